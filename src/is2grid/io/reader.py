"""Lazy arrays over one or more HDF5 datasets laid end to end (the ragged ``segment`` dimension).

Each array holds only a picklable :class:`GranuleReader` and the list of (dataset path, rows)
pieces it spans; data is read on indexing, only the rows asked for. A read goes plan -> fetch ->
decode: h5coro parses the object headers, :mod:`is2grid.io.chunks` finds the chunks of the rows,
:mod:`is2grid.io.sources` fetches them in as few concurrent requests as it can, and
:mod:`is2grid.io.decode` inflates them in threads into preallocated arrays.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import logging
import os
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
from xarray.backends.file_manager import CachingFileManager
from xarray.backends.locks import SerializableLock

from is2grid import _threads, _turns
from is2grid.errors import CorruptGranuleError, GranuleError, Is2gridWarning
from is2grid.io import checksum, chunks, decode, dmrpp
from is2grid.io.credentials import Credentials, redact_url
from is2grid.io.h5coro_adapter import H5Header
from is2grid.io.options import FetchOptions
from is2grid.io.sources import ByteSource, FileObjectSource, LocalFileSource, checked, describe, make_source

_LOG = logging.getLogger(__name__)

#: Compressed chunks fetched ahead for the other variables of a Dataset, at most this many bytes.
READ_AHEAD_BYTES = 256 * 1024 * 1024


Request = tuple[str, int | None, int | None]


#: applied in place to a decoded region of an output, in the decode threads
Convert = Callable[[np.ndarray], None]


class GranuleHandle:
    """An open granule in this process: byte source, h5coro parser, chunk indexes, read-ahead."""

    def __init__(self, target: Any, options: FetchOptions, credentials: Credentials | None):
        self.pid = os.getpid()
        source = make_source(target, options, credentials)
        self.name = source.name
        self.remote = not isinstance(source, LocalFileSource | FileObjectSource)
        self.read_ahead = self.remote if options.read_ahead is None else bool(options.read_ahead)
        look = self.remote if options.dmrpp is None else options.dmrpp
        self.source = source
        self.layouts: dict[str, chunks.Layout] = {}
        self.indexes: dict[str, chunks.ChunkIndex] = {}
        try:
            if look:  # the sidecar's GET goes out beside the GET of the granule's first bytes
                sidecar, _ = concurrently(
                    functools.partial(_sidecar_bytes, source), functools.partial(checked, source), parallel=self.remote
                )
            else:
                sidecar = (None, None)
                checked(source)
            head = self._check_superblock()
            self.h5: H5Header | dmrpp.SidecarHeader = self._header(sidecar, head, options) if look else self._hdf5()
        except BaseException:
            source.close()  # a local file's descriptor is open once its first bytes are read
            raise
        self.ahead: OrderedDict[tuple[str, int], memoryview] = OrderedDict()
        self.ahead_bytes = 0
        self.read_once: set[tuple[str, int]] = set()  # chunks read before: not fetched ahead again
        self.lock = threading.Lock()

    def _hdf5(self) -> H5Header:
        return H5Header(self.name, self.source)

    def _header(
        self, found: tuple[bytes | None, str | None], head: bytes, options: FetchOptions
    ) -> H5Header | dmrpp.SidecarHeader:
        """The sidecar's header where there is a usable one; the HDF5 file's own otherwise (or an error if required)."""
        data, problem = found
        where = f"{self.name}{dmrpp.SUFFIX}"
        if data is not None:
            try:
                sidecar = dmrpp.Sidecar(data, _file_name(self.name), self.source.size())
                return dmrpp.SidecarHeader(sidecar, head, self._hdf5)
            except dmrpp.SidecarError as err:
                problem = f"cannot be used: {err}"
                if not options.dmrpp:
                    warnings.warn(
                        f"{where}: the granule's DMR++ sidecar {problem}. The granule's own HDF5 header is read "
                        "instead (slower over a network); storage_options={'dmrpp': False} stops looking for one.",
                        Is2gridWarning,
                        stacklevel=2,
                    )
        if options.dmrpp:
            raise GranuleError(
                f"{where}: the DMR++ sidecar that storage_options={{'dmrpp': True}} requires "
                f"{problem or 'is not there'}. Pass storage_options={{'dmrpp': None}} to read the granule's own HDF5 "
                "header where there is no usable sidecar."
            )
        if problem:
            _LOG.debug("%s: no sidecar used (%s)", where, problem)
        return self._hdf5()

    def _check_superblock(self) -> bytes:
        """The first bytes; a version 2 or 3 superblock ends in a checksum of the 12 + 4 offsets bytes before it."""
        head = bytes(self.source.read([0], [min(self.source.size(), 64)])[0])
        if len(head) < 12 or head[8] not in (2, 3):
            return head
        covered = 12 + 4 * head[9]
        if len(head) < covered + 4 or not checksum.verify(
            head[:covered], int.from_bytes(head[covered : covered + 4], "little")
        ):
            raise CorruptGranuleError(
                f"{self.name}: the HDF5 superblock fails its checksum (libhdf5: incorrect metadata checksum): the "
                "file is damaged. Download the granule again."
            )
        return head

    def index_of(self, layout: chunks.Layout) -> chunks.ChunkIndex | None:
        """The chunk index of a chunked dataset when it is known (read before, or given by a sidecar)."""
        found = self.indexes.get(layout.path)
        if found is None:
            found = self.h5.chunk_index(layout.path)
            if found is not None:
                self.indexes[layout.path] = found
        return found

    def close(self) -> None:
        self.h5.clear()
        self.drop_ahead()
        self.source.close()

    def take_ahead(self, key: tuple[str, int]) -> memoryview | None:
        with self.lock:
            blob = self.ahead.pop(key, None)
            if blob is not None:
                self.ahead_bytes -= len(blob)
            return blob

    def drop_ahead(self) -> None:
        with self.lock:
            self.ahead.clear()
            self.ahead_bytes = 0

    def keep_ahead(self, key: tuple[str, int], blob: memoryview) -> None:
        with self.lock:
            if key in self.ahead or len(blob) > READ_AHEAD_BYTES:
                return
            self.ahead[key] = blob
            self.ahead_bytes += len(blob)
            while self.ahead_bytes > READ_AHEAD_BYTES:
                _, old = self.ahead.popitem(last=False)
                self.ahead_bytes -= len(old)


class Location(str):
    """A path or URL that shows itself without secrets (the file manager's cache key holds it)."""

    def __repr__(self) -> str:
        return repr(redact_url(str(self)))


def open_handle(target: Any, options: FetchOptions, credentials: Credentials | None = None, mode: Any = "r"):
    """Opener for the CachingFileManager (its ``mode`` argument is unused: reading only)."""
    return GranuleHandle(str(target) if isinstance(target, Location) else target, options, credentials)


_IO_POOL: ThreadPoolExecutor | None = None


_IO_LOCK = threading.Lock()


def concurrently(*calls: Callable[[], Any], parallel: bool = True) -> list[Any]:
    """Run independent blocking calls (metadata reads, group listings) at once; their results in order.

    Remote metadata costs round trips, not bandwidth: the objects of one level of the HDF5 tree
    are independent, so they are fetched together. Calls may nest: one that no thread has started
    when its result is wanted runs in the caller's thread. With ``parallel=False`` (local files, where
    the work is parsing under the GIL and threads only add contention) they run one after another.
    """
    global _IO_POOL
    if len(calls) <= 1 or not parallel:
        return [call() for call in calls]
    with _IO_LOCK:
        if _IO_POOL is None:
            _IO_POOL = ThreadPoolExecutor(max_workers=32, thread_name_prefix="is2grid-meta")
        futures = [_IO_POOL.submit(call) for call in calls]
    # a call no pool thread has taken yet runs here: with several granules opening at once the pool can
    # be full of calls waiting on their own nested calls, which would then wait for ever
    with _turns.waiting():
        return [call() if future.cancel() else future.result() for call, future in zip(calls, futures, strict=True)]


def _forget_pool_after_fork() -> None:
    global _IO_POOL, _IO_LOCK
    _IO_POOL, _IO_LOCK = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_pool_after_fork)


_LOCK_CREATION = threading.Lock()


def _granule_lock(name: str) -> SerializableLock:
    """The lock of a granule in this process: readers of the same granule share it by its token."""
    with _LOCK_CREATION:  # SerializableLock's creation is not thread-safe itself
        return SerializableLock(token=f"is2grid:{name}")


@dataclass(frozen=True)
class Piece:
    """``rows`` rows of dataset ``path`` (of any layout: chunked, contiguous or compact)."""

    path: str
    rows: int


def as_text(value: Any) -> str:
    """Decode a string dataset element as h5coro returns it (bytes, or the repr of a bytearray)."""
    if isinstance(value, np.ndarray):
        value = value.ravel()[0] if value.size else ""
    if isinstance(value, str) and value.startswith(("bytearray(b", "b'", 'b"')):
        value = ast.literal_eval(value[len("bytearray(") : -1] if value.startswith("bytearray(") else value)
    if isinstance(value, bytes | bytearray | np.bytes_):
        value = bytes(value).decode("utf-8", "replace")
    return str(value).strip().strip("\x00").strip()


@dataclass
class _Job:
    """Decoding work of one read: outputs, and per fetched range what to decode into which output."""

    outputs: list[np.ndarray]
    tasks: list[tuple[int, chunks.Layout, tuple[int, ...], int, bool]]  # (output, layout, start, lo, raw)
    keys: list[tuple[str, int]]
    ahead_keys: list[tuple[str, int]]
    fills: list[Any]  # per output: the fill value that becomes NaN, or None
    converts: list[Convert | None]  # per output: applied in place to every decoded region of it


class GranuleReader:
    """Reads datasets of one granule through a shared, picklable handle (never a live one)."""

    def __init__(self, target: Any, credentials: Credentials | None = None, options: FetchOptions | None = None):
        self.target = target
        self.name = describe(target)
        self.credentials = credentials
        self.options = options or FetchOptions()
        self.lock = _granule_lock(self.name)
        if isinstance(target, str):
            self.manager: Any = CachingFileManager(
                open_handle,
                Location(target),
                kwargs={"options": self.options, "credentials": credentials},
                lock=self.lock,
            )
        else:
            self.manager = _OwnedHandle(target, self.options, credentials)

    def __getstate__(self):
        return {k: self.__dict__[k] for k in ("target", "name", "credentials", "options", "manager")}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.lock = _granule_lock(self.name)

    def close(self) -> None:
        self.manager.close()

    @property
    def remote(self) -> bool:
        """Whether reads cost round trips (``s3://``, ``https://``), so independent ones should overlap."""
        return self.handle().remote

    def handle(self) -> GranuleHandle:
        """The open granule; opened once, under the granule's lock, however many threads ask at first."""
        handle = self.manager.acquire(needs_lock=True)
        if handle.pid != os.getpid():  # inherited through fork: its clients and threads are the parent's
            self.manager.close()
            handle = self.manager.acquire(needs_lock=True)
        return handle

    @contextlib.contextmanager
    def _guarded(self, what: str) -> Iterator[GranuleHandle]:
        """The handle; h5coro's own failures become CorruptGranuleError."""
        handle = self.handle()
        try:
            yield handle
        except CorruptGranuleError as err:
            if not isinstance(handle.h5, dmrpp.SidecarHeader) or handle.h5.name in str(err):  # (nested: said once)
                raise
            raise CorruptGranuleError(
                f"{err} The chunks were located with the granule's DMR++ sidecar ({handle.h5.name}); if the granule "
                "was changed after its sidecar was made, read it without: storage_options={'dmrpp': False}."
            ) from None
        except GranuleError:
            raise
        except Exception as err:
            raise CorruptGranuleError(
                f"{self.name}: {what} failed ({type(err).__name__}: {err}). "
                "The file is probably truncated or damaged: download it again."
            ) from None
        finally:
            handle.h5.trim()

    def listing(self, group: str) -> tuple[dict[str, Any], set[str]]:
        """Datasets (name -> Layout) and subgroup names of ``group``; empty if it is missing.

        Built on :meth:`links` (h5coro's own ``list`` has its prefix-matching bug) and :meth:`metadata`:
        a member without a datatype is a group.
        """
        names = sorted(self.links(group))
        prefix = group.strip("/") + "/" if group.strip("/") else ""
        metas = self.metadata([prefix + n for n in names], missing_ok=True) if names else {}
        variables = {n: metas[prefix + n] for n in names if metas[prefix + n] is not None}
        return variables, set(names) - set(variables)

    def vlen_text(self, records: np.ndarray) -> list[str]:
        """The strings of variable-length string elements (16-byte records: length, global heap, index)."""
        out = []
        with self._guarded("reading variable-length strings") as handle:
            o, length = handle.h5.offset_size, handle.h5.length_size
            for record in np.asarray(records).ravel():
                raw = bytes(record)
                size, heap, index = (int.from_bytes(raw[0:4], "little"), int.from_bytes(raw[4 : 4 + o], "little"),
                                     int.from_bytes(raw[4 + o : 8 + o], "little"))  # fmt: skip
                out.append(_global_heap_object(handle, heap, index, size, o, length).decode("utf-8", "replace"))
        return out

    @property
    def described(self) -> bool:
        """Whether the granule's structure comes from a DMR++ sidecar (listing it costs no round trip)."""
        return isinstance(self.handle().h5, dmrpp.SidecarHeader)

    def group_attributes(self, group: str) -> dict[str, str]:
        """The text attributes of ``group`` where they are known without reading (from a DMR++ sidecar); else {}."""
        with self._guarded(f"listing the attributes of {group!r}") as handle:
            return handle.h5.group_attributes(group)

    def drop_ahead(self) -> None:
        """Forget the compressed chunks fetched ahead and not read yet (fetched for beams not opened after all)."""
        with self._guarded("dropping chunks fetched ahead") as handle:
            handle.drop_ahead()

    def links(self, group: str) -> set[str]:
        """Names of the members of ``group`` (datasets and subgroups), without reading their headers."""
        return self.survey(groups=[group])[1][group]

    def metadata(
        self,
        paths: list[str],
        missing_ok: bool = False,
        index: bool = False,
        keep: Mapping[str, tuple[int, ...]] | None = None,
    ) -> dict[str, Any]:
        """The layouts (shape, dtype, storage) of datasets; their object headers are read concurrently.

        With ``missing_ok``, a dataset that is not there maps to None instead of raising; with
        ``index``, each dataset's chunk index is read right after its header, in the same thread.
        ``keep``: path -> rows (negative: from the end) whose chunks is fetched right after the index
        and kept for a read to come, when read-ahead is on (see :meth:`survey`).
        """
        return self.survey(paths=paths, missing_ok=missing_ok, index=index, keep=keep)[0]

    def survey(
        self,
        paths: Sequence[str] = (),
        groups: Sequence[str] = (),
        missing_ok: bool = False,
        index: bool = False,
        keep: Mapping[str, tuple[int, ...]] | None = None,
    ) -> tuple[dict[str, Any], dict[str, set[str]]]:
        """Dataset metadata and group member names, all read at once (one level of the tree at a time).

        A chunk in ``keep`` is fetched by the thread that read its index, while the other threads
        still walk theirs: xarray's look at the first and last time then costs no round trip of its own.
        """

        def dataset(handle, path):
            found = handle.layouts.get(path) or handle.h5.layout(path)
            if found is None:
                if missing_ok:
                    return None
                raise CorruptGranuleError(
                    f"{self.name}: dataset {path!r} is missing or its description is damaged. "
                    "Download the granule again."
                )
            layout = handle.layouts.setdefault(path, found)
            chunked = layout.layout == chunks.CHUNKED and layout.n_elements
            if index and chunked and handle.index_of(layout) is None:
                steps = chunks.index_steps([layout], handle.h5.offset_size, handle.source.size(), self.name)
                handle.indexes.update(_drive(steps, handle.source))
            if keep and path in keep and handle.read_ahead and path in handle.indexes and layout.shape[0]:
                index_of = handle.indexes[path]
                rows = {row % layout.shape[0] for row in keep[path]}
                covering = sorted({int(i) for r in rows for i in index_of.covering(r, r + 1, layout.chunk_shape[0])})
                offsets = [int(index_of.offsets[i]) for i in covering]
                blobs = handle.source.read(
                    offsets, [a + int(index_of.sizes[i]) for a, i in zip(offsets, covering, strict=True)]
                )
                for offset, blob in zip(offsets, blobs, strict=True):
                    handle.keep_ahead((path, offset), blob)
            return layout

        def group(handle, path):
            return handle.h5.members(path)

        what = f"reading the description of {[*paths, *groups]}"
        with self._guarded(what) as handle:
            found = concurrently(
                *(functools.partial(dataset, handle, p) for p in paths),
                *(functools.partial(group, handle, g) for g in groups),
                parallel=handle.remote,
            )
        return dict(zip(paths, found[: len(paths)], strict=True)), dict(zip(groups, found[len(paths) :], strict=True))

    def read(
        self,
        requests: Sequence[Request],
        ahead: Sequence[Request] = (),
        into: Sequence[np.ndarray] | None = None,
        fills: Sequence[Any] | None = None,
        converts: Sequence[Convert | None] | None = None,
    ) -> list[np.ndarray]:
        """Read ``(path, start, stop)`` row ranges (``None`` bounds: the whole dataset) in one plan.

        ``ahead``: row ranges of other datasets whose compressed chunks are fetched in the same
        requests and kept for a later read (when read-ahead is on for this granule). ``into``:
        arrays of the right shape to decode into instead of new ones (floating point where
        ``fills``, one per request or None, asks for fill values to become NaN). ``converts``: one
        per request or None, a function applied in place, in the decode threads, to each decoded
        region of that request's output (e.g. seconds to datetimes).
        """
        with self._guarded(f"reading {[r[0] for r in requests]}") as handle:
            job, blobs = _drive(self._steps(handle, requests, ahead, into, fills, converts), handle.source)
            try:
                return self._decode(handle, job, blobs)
            finally:
                handle.source.release()

    async def read_async(
        self,
        requests: Sequence[Request],
        ahead: Sequence[Request] = (),
        into: Sequence[np.ndarray] | None = None,
        fills: Sequence[Any] | None = None,
        converts: Sequence[Convert | None] | None = None,
    ) -> list[np.ndarray]:
        """:meth:`read` for asyncio: fetches await, decoding runs in the decode pool."""
        import asyncio

        with self._guarded(f"reading {[r[0] for r in requests]}") as handle:
            await asyncio.to_thread(self._ensure_layouts, handle, [r[0] for r in (*requests, *ahead)])
            steps = self._steps(handle, requests, ahead, into, fills, converts)
            try:
                ranges = next(steps)
                while True:
                    blobs = await handle.source.read_async([a for a, _ in ranges], [b for _, b in ranges])
                    ranges = steps.send(blobs)
            except StopIteration as done:
                job, blobs = done.value
            # not in the decode pool itself: decode waits on that pool's threads
            try:
                return await asyncio.to_thread(self._decode, handle, job, blobs, False)
            finally:
                handle.source.release()

    def _ensure_layouts(self, handle: GranuleHandle, paths: Sequence[str]) -> None:
        missing = [p for p in dict.fromkeys(paths) if p not in handle.layouts]
        if missing:
            self.metadata(missing)

    def _steps(
        self,
        handle: GranuleHandle,
        requests: Sequence[Request],
        ahead: Sequence[Request],
        into: Sequence[np.ndarray] | None = None,
        fills: Sequence[Any] | None = None,
        converts: Sequence[Convert | None] | None = None,
    ) -> Generator[list[tuple[int, int]], list[memoryview], tuple[_Job, list[memoryview]]]:
        self._ensure_layouts(handle, [r[0] for r in (*requests, *ahead)])
        if not handle.read_ahead:
            ahead = ()
        layouts = handle.layouts
        wanted = [layouts[p] for p in dict.fromkeys(r[0] for r in (*requests, *ahead))]
        unindexed = [
            lay for lay in wanted if lay.layout == chunks.CHUNKED and lay.n_elements and handle.index_of(lay) is None
        ]
        if unindexed:
            walk = chunks.index_steps(unindexed, handle.h5.offset_size, handle.source.size(), self.name)
            handle.indexes.update((yield from walk))
        outputs: list[np.ndarray] = []
        tasks: list[tuple[int, chunks.Layout, tuple[int, ...], int, bool]] = []
        ranges: list[tuple[int, int]] = []
        keys: list[tuple[str, int]] = []
        held: dict[int, memoryview] = {}
        kept: set[int] = set()
        for number, (path, start, stop) in enumerate(requests):
            layout = layouts[path]
            lo, hi = _bounds(layout, start, stop)
            shape = (hi - lo, *layout.shape[1:])
            native = layout.dtype.newbyteorder("=")
            fill = fills[number] if fills is not None else None
            out = into[number] if into is not None else np.empty(shape, dtype=native)
            expected = out.dtype.kind == "f" if fill is not None else out.dtype.newbyteorder("=") == native
            if out.shape != shape or not expected:
                raise CorruptGranuleError(
                    f"{self.name}: {path!r} holds {layout.dtype}{list(layout.shape)}, not the {out.dtype} the "
                    "granule's other datasets led to expect. The file is damaged or not ATL10."
                )
            outputs.append(out)
            if hi <= lo or not layout.n_elements:  # no rows, or rows of nothing (a (1, 0) dataset)
                continue
            if layout.layout != chunks.CHUNKED:
                tasks.append((len(outputs) - 1, layout, (lo,), lo, True))
                keys.append((path, -1))
                if layout.inline is not None:  # a compact dataset's bytes, given by a sidecar
                    held[len(tasks) - 1] = memoryview(layout.inline)[lo * layout.row_bytes : hi * layout.row_bytes]
                    ranges.append((0, 0))
                else:
                    ranges.append((layout.address + lo * layout.row_bytes, layout.address + hi * layout.row_bytes))
                continue
            index = handle.indexes[path]
            # a read of part of one chunk (xarray's look at the first and last time, a peek at a few rows)
            # keeps that chunk's bytes for the whole read that usually follows, when round trips are dear
            small = handle.read_ahead and hi - lo < layout.chunk_shape[0]
            for i in index.covering(lo, hi, layout.chunk_shape[0]):
                key = (path, int(index.offsets[i]))
                if small:
                    kept.add(len(tasks))
                else:
                    handle.read_once.add(key)
                tasks.append((len(outputs) - 1, layout, tuple(index.starts[i]), lo, False))
                blob = handle.take_ahead(key)
                if blob is not None:
                    held[len(tasks) - 1] = blob
                    ranges.append((0, 0))
                else:
                    ranges.append((int(index.offsets[i]), int(index.offsets[i] + index.sizes[i])))
                keys.append(key)
        ahead_keys: list[tuple[str, int]] = []
        ahead_ranges: list[tuple[int, int]] = []
        reading = set(keys)
        for path, start, stop in ahead:
            layout = layouts[path]
            if layout.layout != chunks.CHUNKED or not layout.n_elements:
                continue
            lo, hi = _bounds(layout, start, stop)
            index = handle.indexes[path]
            for i in index.covering(lo, hi, layout.chunk_shape[0]):
                key = (path, int(index.offsets[i]))
                if key not in handle.ahead and key not in handle.read_once and key not in reading:
                    reading.add(key)
                    ahead_keys.append(key)
                    ahead_ranges.append((int(index.offsets[i]), int(index.offsets[i] + index.sizes[i])))
        fetch = [r for i, r in enumerate(ranges) if i not in held] + ahead_ranges
        blobs = (yield fetch) if fetch else []
        fetched = iter(blobs)
        ordered = [held[i] if i in held else next(fetched) for i in range(len(ranges))]
        for key, blob in zip(ahead_keys, fetched, strict=True):
            handle.keep_ahead(key, blob)
        for i in kept:
            handle.keep_ahead(keys[i], ordered[i])
        masks = list(fills) if fills is not None else [None] * len(outputs)
        then: list[Convert | None] = list(converts) if converts is not None else [None] * len(outputs)
        return _Job(outputs, tasks, keys, ahead_keys, masks, then), ordered

    def _decode(
        self, handle: GranuleHandle, job: _Job, blobs: list[memoryview], caller_works: bool = True
    ) -> list[np.ndarray]:
        def one(task, blob):
            index, layout, start, lo, raw = task
            out, fill, convert = job.outputs[index], job.fills[index], job.converts[index]
            if raw:
                stored = np.frombuffer(blob, dtype=layout.dtype).reshape(out.shape)
                out[...] = stored
                if fill is not None:
                    decode.mask_fill(out, stored, fill)
                region = out
            else:
                region = decode.place(out, decode.decode_chunk(layout, blob, self.name), start, lo, fill)
            if convert is not None and region.size:
                convert(region)

        # one shared counter: the threads end within a chunk of each other, and this thread works too
        _threads.each(len(job.tasks), lambda i: one(job.tasks[i], blobs[i]), caller_works)
        return job.outputs


def _drive(steps: Generator[Any, Any, Any], source: ByteSource) -> Any:
    """Run a plan generator to its end with blocking fetches."""
    try:
        ranges = next(steps)
        while True:
            ranges = steps.send(source.read([a for a, _ in ranges], [b for _, b in ranges]))
    except StopIteration as done:
        return done.value


def _bounds(layout: chunks.Layout, start: int | None, stop: int | None) -> tuple[int, int]:
    n = layout.shape[0] if layout.shape else 1
    if start is None or stop is None:
        return 0, n
    if not 0 <= start <= stop <= n:
        raise IndexError(f"rows {start}:{stop} of {layout.path!r} (which has {n})")
    return int(start), int(stop)


class _OwnedHandle:
    """Holds the handle of a file object (there is nothing to reopen it from)."""

    def __init__(self, target: Any, options: FetchOptions, credentials: Credentials | None):
        self.args = (target, options, credentials)
        self._handle: GranuleHandle | None = None
        self._lock = threading.Lock()

    def acquire(self, needs_lock: bool = False) -> GranuleHandle:
        with self._lock:
            if self._handle is None:
                self._handle = GranuleHandle(*self.args)
            return self._handle

    def close(self) -> None:
        with self._lock:
            if self._handle is not None:
                self._handle.close()
                self._handle = None

    def __getstate__(self):
        return {"args": self.args}

    def __setstate__(self, state):
        self.__init__(*state["args"])


def _global_heap_object(handle: GranuleHandle, heap: int, index: int, size: int, o: int, length: int) -> bytes:
    """Object ``index`` of the global heap collection at ``heap`` (where variable-length strings live)."""
    head = bytes(handle.source.read([heap], [heap + 8 + length])[0])
    if head[:4] != b"GCOL":
        raise CorruptGranuleError(f"{handle.name}: no global heap collection at byte {heap}.")
    end = heap + int.from_bytes(head[8 : 8 + length], "little")
    block = bytes(handle.source.read([heap], [end])[0])
    at = 8 + length
    while at + 8 + length <= len(block):
        number = int.from_bytes(block[at : at + 2], "little")
        object_size = int.from_bytes(block[at + 8 : at + 8 + length], "little")
        if number == index:
            if object_size != size:
                raise CorruptGranuleError(f"{handle.name}: a global heap object of {object_size} bytes, not {size}.")
            return block[at + 8 + length : at + 8 + length + size]
        if number == 0:  # free space: the end of the collection's objects
            break
        at += 8 + length + object_size + (-object_size % 8)
    raise CorruptGranuleError(f"{handle.name}: global heap object {index} not found at byte {heap}.")


def _sidecar_bytes(source: ByteSource) -> tuple[bytes | None, str | None]:
    """The granule's DMR++ sidecar and, where there is none to read, why (never raises: the granule may still open)."""
    try:
        data = source.sibling(dmrpp.SUFFIX)
    except Exception as err:
        return None, f"could not be read ({type(err).__name__}: {err})"
    return (data, None) if data is not None else (None, "is not there")


def _file_name(name: str) -> str:
    """The file name at the end of a path or URL (without its query)."""
    from urllib.parse import urlsplit

    path = urlsplit(name).path if "://" in name else name
    return path.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
