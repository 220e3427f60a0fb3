"""Lazy arrays over one or more HDF5 datasets laid end to end (the ragged ``segment`` dimension).

Each array holds only a picklable :class:`GranuleReader` and the list of (dataset path, rows)
pieces it spans; data is read on indexing, only the rows asked for. A read goes plan -> fetch ->
decode: h5coro parses the object headers, :mod:`is2grid._chunks` finds the chunks of the rows,
:mod:`is2grid._fetch` fetches them in as few concurrent requests as it can, and
:mod:`is2grid._decode` inflates them in threads into preallocated arrays.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
from xarray.backends import BackendArray
from xarray.backends.file_manager import CachingFileManager
from xarray.backends.locks import SerializableLock
from xarray.core import indexing

from is2grid import _checksum, _chunks, _decode
from is2grid._fetch import ByteSource, FetchOptions, FileObjectSource, LocalFileSource, describe, open_source
from is2grid.credentials import Credentials, redact_url
from is2grid.errors import CorruptGranuleError, GranuleError

#: h5coro reads metadata in lines of this size (its default, 4 MB lines, moved whole granules).
METADATA_LINE = 64 * 1024
#: h5coro keeps every line it reads; past this many a granule's line cache is dropped.
MAX_CACHED_LINES = 256
#: Compressed chunks fetched ahead for the other variables of a Dataset, at most this many bytes.
READ_AHEAD_BYTES = 256 * 1024 * 1024

Request = tuple[str, int | None, int | None]
#: applied in place to a decoded region of an output, in the decode threads
Convert = Callable[[np.ndarray], None]


class _SourceDriver:
    """h5coro's driver interface over a ByteSource (reads past the end are clipped, as files do)."""

    def __init__(self, source: ByteSource):
        self.source = source

    def read(self, pos: int, size: int) -> memoryview:
        stop = min(pos + size, self.source.size())
        if stop <= pos:
            return memoryview(b"")
        return self.source.read([pos], [stop])[0]

    def close(self) -> None:
        pass


def _in_cache(h5: Any, pos: int, size: int) -> tuple[memoryview, int] | None:
    """The cached line holding bytes ``[pos, pos + size)`` whole, and their offset in it; None if not cached.

    h5coro's header parser asks for a few bytes at a time, tens of thousands of times per open; answering
    those from the line directly was a third of a local open.
    """
    start = pos + h5.baseAddress
    line = start & h5.cacheLineMask
    view = h5.cache.get(line)
    if view is not None and start - line + size <= len(view):
        return view, start - line
    return None


@functools.cache
def _parsers() -> tuple[type, type]:
    """h5coro's file and dataset parsers, adapted (made on first use: h5coro is imported lazily)."""
    import struct

    from h5coro import h5coro
    from h5coro.h5dataset import H5Dataset

    class H5Coro(h5coro.H5Coro):
        def ioRequest(self, pos, size, caching=True, prefetch=False):
            found = _in_cache(self, pos, size) if caching else None
            if found is not None:
                return found[0][found[1] : found[1] + size]
            data = super().ioRequest(pos, size, caching, prefetch)
            # h5coro joins reads that cross a cache line into bytes, then calls .tobytes() on them
            return memoryview(data) if isinstance(data, bytes) else data

    fields = {n: struct.Struct("<" + c).unpack_from for n, c in ((1, "B"), (2, "H"), (4, "I"), (8, "Q"))}

    class Described(H5Dataset):
        """h5coro's header parser, also recording the byte order it skips (bit 0 of the datatype class bits)."""

        def readField(self, size):
            found = _in_cache(self.resourceObject, self.pos, size) if size in fields else None
            if found is None:
                return super().readField(size)
            self.pos += size
            return fields[size](*found)[0]

        def datatypeMsgHandler(self, msg_size, obj_hdr_flags, dlvl, meta=None):
            target = meta if meta is not None else self.meta
            version_class = int.from_bytes(bytes(self.resourceObject.ioRequest(self.pos, 4)), "little")
            found = super().datatypeMsgHandler(msg_size, obj_hdr_flags, dlvl, meta)
            target.big_endian = (version_class & 0x0F) in (0, 1) and bool((version_class >> 8) & 1)
            return found

        def fillvalueMsgHandler(self, msg_size, obj_hdr_flags, dlvl):
            # h5coro reads a fill value as one number: a 16-byte one (a variable-length string's, as nccopy
            # writes) raised inside the handler, which h5coro took for an unknown message and skipped from
            # the wrong place, losing the rest of the header (the data layout among it)
            start = self.pos
            version = self._field(start, 1)
            at = start + 3 if version == 2 else start + 1
            defined = self._field(at, 1) if version == 2 else self._field(at, 1) & 0x20
            size = self._field(at + 1, 4) if defined else 0
            if size in (0, 1, 2, 4, 8):
                return super().fillvalueMsgHandler(msg_size, obj_hdr_flags, dlvl)
            self.meta.fillsize = size
            self.meta.fillvalue = bytes(self.resourceObject.ioRequest(at + 5, size))
            self.pos = start + msg_size
            return msg_size

        # metadata blocks are checked against their checksums before h5coro parses them (it skips them)

        def _field(self, pos: int, size: int) -> int:
            return int.from_bytes(bytes(self.resourceObject.ioRequest(pos, size)), "little")

        def _checked(self, what: str, start: int, covered: int, zeroed: int | None = None) -> None:
            """The block at ``start`` whose checksum follows its first ``covered`` bytes (or sits at ``zeroed``)."""
            done = self.resourceObject.__dict__.setdefault("is2grid_checked", set())
            if start in done:
                return
            at = start + covered if zeroed is None else zeroed
            block = bytes(self.resourceObject.ioRequest(start, covered))
            if len(block) < covered or len(bytes(self.resourceObject.ioRequest(at, 4))) < 4:
                raise CorruptGranuleError(
                    f"{self.resourceObject.resource}: the {what} at byte {start} runs past the end of the file: it is "
                    "truncated, download it again."
                )
            stored = self._field(at, 4)
            if zeroed is not None:
                block = block[: at - start] + bytes(4) + block[at - start + 4 :]
            if not _checksum.verify(block, stored):
                raise CorruptGranuleError(
                    f"{self.resourceObject.resource}: the {what} at byte {start} fails its checksum (as libhdf5 says: "
                    "incorrect metadata checksum): the file is damaged. Download the granule again."
                )
            done.add(start)

        def readObjHdrV0(self, dlvl):
            start = self.pos
            flags = self._field(start + 5, 1)
            prefix = 6 + (16 if flags & 0x20 else 0) + (4 if flags & 0x10 else 0)
            width = 1 << (flags & 0x3)
            self._checked("object header", start, prefix + width + self._field(start + prefix, width))
            return super().readObjHdrV0(dlvl)

        def headercontMsgHandler(self, msg_size, obj_hdr_flags, dlvl):
            if not obj_hdr_flags & self.CUSTOM_V1_FLAG:
                files = self.resourceObject
                offset = self._field(self.pos, files.offsetSize)
                length = self._field(self.pos + files.offsetSize, files.lengthSize)
                if length < 8:
                    raise CorruptGranuleError(f"{files.resource}: an object header continuation of {length} bytes.")
                self._checked("object header continuation", offset, length - 4)
            return super().headercontMsgHandler(msg_size, obj_hdr_flags, dlvl)

        def readFractalHeap(self, msg_type, obj_hdr_flags, dlvl):
            files, start = self.resourceObject, self.pos
            length, offset = files.lengthSize, files.offsetSize
            filters = self._field(start + 7, 2)
            covered = 22 + 12 * length + 3 * offset + ((length + 4 + filters) if filters else 0)
            self._checked("fractal heap header", start, covered)
            return super().readFractalHeap(msg_type, obj_hdr_flags, dlvl)

        def readDirectBlock(self, heap_info, block_size, obj_hdr_flags, dlvl):
            start, offset = self.pos, self.resourceObject.offsetSize
            if heap_info["dblk_checksum"]:
                at = start + 5 + offset + heap_info["blk_offset_size"]
                self._checked("fractal heap direct block", start, block_size, zeroed=at)
            live = self._live[-1] if getattr(self, "_live", None) else None
            if live is None or heap_info["msg_type"] != self.LINK_MSG:
                return super().readDirectBlock(heap_info, block_size, obj_hdr_flags, dlvl)
            # the group's links: only those its name index lists, each read where its heap ID says it is
            block_offset = self._field(start + 5 + offset, heap_info["blk_offset_size"])
            for heap_offset in sorted(o for o in live if block_offset <= o < block_offset + block_size):
                self.pos = start + (heap_offset - block_offset)
                self.readMessage(self.LINK_MSG, block_size, obj_hdr_flags, dlvl)
                heap_info["cur_objects"] += 1
                if self.earlyExit and self.datasetFound:
                    break
            self.pos = start + block_size
            return block_size

        # h5coro reads a group's links by scanning its fractal heap's blocks from start to end, so a link
        # deleted with h5py or libhdf5 (freed, not zeroed, and its space perhaps reused) still shows, pointing
        # at a freed object header. The group's name index (a version 2 B-tree) holds the heap IDs of the live
        # links only: where it can be read, the links are read from there.

        def linkinfoMsgHandler(self, msg_size, obj_hdr_flags, dlvl):
            live = self._live_links(self.pos)
            self.__dict__.setdefault("_live", []).append(live)
            try:
                return super().linkinfoMsgHandler(msg_size, obj_hdr_flags, dlvl)
            finally:
                self._live.pop()

        def _live_links(self, pos: int) -> set[int] | None:
            """Heap offsets of the live links of the group whose link info message is at ``pos`` (None: unknown)."""
            files = self.resourceObject
            o, length = files.offsetSize, files.lengthSize
            flags = self._field(pos + 1, 1)
            at = pos + 2 + (8 if flags & 0x1 else 0)
            heap, index = self._field(at, o), self._field(at + o, o)
            invalid = (1 << (8 * o)) - 1
            if heap == invalid or index == invalid or bytes(files.ioRequest(heap, 4)) != b"FRHP":
                return None
            id_length = self._field(heap + 5, 2)
            huge_and_tiny = self._field(heap + 14 + 7 * length + 2 * o, length) + self._field(
                heap + 14 + 9 * length + 2 * o, length
            )
            offset_width = (self._field(heap + 16 + 12 * length + 2 * o, 2) + 7) // 8
            if huge_and_tiny or bytes(files.ioRequest(index, 4)) != b"BTHD":
                return None
            self._checked("link name index (v2 B-tree) header", index, 16 + o + 2 + length)
            kind, node_size = self._field(index + 5, 1), self._field(index + 6, 4)
            record, depth = self._field(index + 10, 2), self._field(index + 12, 2)
            root, count = self._field(index + 16, o), self._field(index + 16 + o, 2)
            if kind != 5 or depth > 1 or record < 4 + id_length:
                return None
            leaf_width = (((node_size - 10) // record).bit_length() - 1) // 8 + 1
            records: list[bytes] = []

            def node(address: int, n: int, signature: bytes, children: int) -> list[tuple[int, int]]:
                if bytes(files.ioRequest(address, 4)) != signature:
                    raise CorruptGranuleError(f"{files.resource}: no link name index node at byte {address}.")
                pointers = 6 + n * record
                self._checked("link name index node", address, pointers + children * (o + leaf_width))
                block = bytes(files.ioRequest(address + 6, n * record))
                records.extend(block[i * record : (i + 1) * record] for i in range(n))
                at = address + pointers
                return [
                    (self._field(at + i * (o + leaf_width), o), self._field(at + i * (o + leaf_width) + o, leaf_width))
                    for i in range(children)
                ]

            if depth == 0:
                node(root, count, b"BTLF", 0)
            else:
                for child, n in node(root, count, b"BTIN", count + 1):
                    node(child, n, b"BTLF", 0)
            live = set()
            for entry in records:
                heap_id = entry[4 : 4 + id_length]
                if (heap_id[0] >> 4) & 0x3:  # not a managed object
                    return None
                live.add(int.from_bytes(heap_id[1 : 1 + offset_width], "little"))
            return live

        def readIndirectBlock(self, heap_info, block_size, obj_hdr_flags, dlvl):
            rows = heap_info["curr_num_rows"]
            if block_size > 0:
                rows = (
                    self.highestBit(block_size)
                    - self.highestBit(heap_info["starting_blk_size"] * heap_info["table_width"])
                    + 1
                )
            entries = rows * heap_info["table_width"]
            offset = self.resourceObject.offsetSize
            self._checked(
                "fractal heap indirect block", self.pos, 5 + offset + heap_info["blk_offset_size"] + entries * offset
            )
            return super().readIndirectBlock(heap_info, block_size, obj_hdr_flags, dlvl)

    return H5Coro, Described


def _described(*args, **kwargs):
    """h5coro's dataset parser, recording byte order and reading header fields from the cache."""
    return _parsers()[1](*args, **kwargs)


class GranuleHandle:
    """An open granule in this process: byte source, h5coro parser, chunk indexes, read-ahead."""

    def __init__(self, target: Any, options: FetchOptions, credentials: Credentials | None):
        self.pid = os.getpid()
        self.source = open_source(target, options, credentials)
        self.name = self.source.name
        self.remote = not isinstance(self.source, LocalFileSource | FileObjectSource)
        self.read_ahead = self.remote if options.read_ahead is None else bool(options.read_ahead)

        H5Coro = _parsers()[0]

        try:
            self.h5 = H5Coro(
                self.name,
                lambda resource, credentials: _SourceDriver(self.source),
                cacheLineSize=METADATA_LINE,
                errorChecking=True,
            )
        except GranuleError:
            raise
        except Exception as err:
            raise CorruptGranuleError(
                f"{self.name}: not a readable HDF5 file ({type(err).__name__}: {err}). "
                "Is it a complete ATL10 granule? Download it again if it was cut short."
            ) from None
        self._check_superblock()
        self.layouts: dict[str, _chunks.Layout] = {}
        self.indexes: dict[str, _chunks.ChunkIndex] = {}
        self.ahead: OrderedDict[tuple[str, int], memoryview] = OrderedDict()
        self.ahead_bytes = 0
        self.read_once: set[tuple[str, int]] = set()  # chunks read before: not fetched ahead again
        self.lock = threading.Lock()

    def _check_superblock(self) -> None:
        """A version 2 or 3 superblock ends in a checksum of the 12 + 4 offsets bytes before it."""
        head = bytes(self.source.read([0], [min(self.source.size(), 64)])[0])
        if len(head) < 12 or head[8] not in (2, 3):
            return
        covered = 12 + 4 * head[9]
        if len(head) < covered + 4 or not _checksum.verify(
            head[:covered], int.from_bytes(head[covered : covered + 4], "little")
        ):
            raise CorruptGranuleError(
                f"{self.name}: the HDF5 superblock fails its checksum (libhdf5: incorrect metadata checksum): the "
                "file is damaged. Download the granule again."
            )

    def close(self) -> None:
        self.h5.cache.clear()
        self.ahead.clear()
        self.source.close()

    def take_ahead(self, key: tuple[str, int]) -> memoryview | None:
        with self.lock:
            blob = self.ahead.pop(key, None)
            if blob is not None:
                self.ahead_bytes -= len(blob)
            return blob

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
    are independent, so they are fetched together. Calls run here may call this once more (the pool
    is large enough for one level of nesting), no deeper. With ``parallel=False`` (local files, where
    the work is parsing under the GIL and threads only add contention) they run one after another.
    """
    global _IO_POOL
    if len(calls) <= 1 or not parallel:
        return [call() for call in calls]
    with _IO_LOCK:
        if _IO_POOL is None:
            _IO_POOL = ThreadPoolExecutor(max_workers=32, thread_name_prefix="is2grid-meta")
        futures = [_IO_POOL.submit(call) for call in calls]
    return [f.result() for f in futures]


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
    tasks: list[tuple[int, _chunks.Layout, tuple[int, ...], int, bool]]  # (output, layout, start, lo, raw)
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
        except GranuleError:
            raise
        except Exception as err:
            raise CorruptGranuleError(
                f"{self.name}: {what} failed ({type(err).__name__}: {err}). "
                "The file is probably truncated or damaged: download it again."
            ) from None
        finally:
            if len(handle.h5.cache) > MAX_CACHED_LINES:
                handle.h5.cache.clear()

    def listing(self, group: str) -> tuple[dict[str, Any], set[str]]:
        """Datasets (name -> h5coro metadata) and subgroup names of ``group``; empty if it is missing.

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
            o, length = handle.h5.offsetSize, handle.h5.lengthSize
            for record in np.asarray(records).ravel():
                raw = bytes(record)
                size, heap, index = (int.from_bytes(raw[0:4], "little"), int.from_bytes(raw[4 : 4 + o], "little"),
                                     int.from_bytes(raw[4 + o : 8 + o], "little"))  # fmt: skip
                out.append(_global_heap_object(handle, heap, index, size, o, length).decode("utf-8", "replace"))
        return out

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
        """h5coro metadata (shape, type, layout) of datasets; their object headers are read concurrently.

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
            if getattr(handle.h5.metadataTable.get(path), "big_endian", None) is None:
                handle.h5.metadataTable.pop(path, None)  # described by plain h5coro: no byte order recorded
            meta = _described(handle.h5, path, earlyExit=True, metaOnly=True, enableAttributes=False).meta
            if meta.typeSize == 0 and meta.layout is None and missing_ok:
                return None
            if meta.typeSize == 0 or meta.layout is None:
                raise CorruptGranuleError(
                    f"{self.name}: dataset {path!r} is missing or its description is damaged. "
                    "Download the granule again."
                )
            layout = handle.layouts.setdefault(path, _chunks.Layout.from_h5coro(path, meta, handle.h5.offsetSize))
            if index and layout.layout == _chunks.CHUNKED and layout.n_elements and path not in handle.indexes:
                steps = _chunks.index_steps([layout], handle.h5.offsetSize, handle.source.size(), self.name)
                handle.indexes.update(_drive(steps, handle.source))
            if keep and path in keep and handle.read_ahead and path in handle.indexes and layout.shape[0]:
                found = handle.indexes[path]
                rows = {row % layout.shape[0] for row in keep[path]}
                chunks = sorted({int(i) for r in rows for i in found.covering(r, r + 1, layout.chunk_shape[0])})
                offsets = [int(found.offsets[i]) for i in chunks]
                blobs = handle.source.read(
                    offsets, [a + int(found.sizes[i]) for a, i in zip(offsets, chunks, strict=True)]
                )
                for offset, blob in zip(offsets, blobs, strict=True):
                    handle.keep_ahead((path, offset), blob)
            return meta

        def group(handle, path):
            # h5coro matches members by string prefix ("lidar" would list "lidarDocument"'s "Document"):
            # take the names below "path/" from the addresses it read
            from h5coro.h5coro import massagePath

            # as h5coro's inspectPath, through the checking parser
            _described(handle.h5, massagePath(path), earlyExit=False, metaOnly=True, enableAttributes=False)
            prefix = path.strip("/") + "/" if path.strip("/") else ""
            known = list(handle.h5.pathAddresses)
            return {p[len(prefix) :].split("/")[0] for p in known if p.startswith(prefix) and len(p) > len(prefix)}

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
            # not in the decode pool itself: _decode waits on that pool's threads
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
            lay for lay in wanted if lay.layout == _chunks.CHUNKED and lay.n_elements and lay.path not in handle.indexes
        ]
        if unindexed:
            walk = _chunks.index_steps(unindexed, handle.h5.offsetSize, handle.source.size(), self.name)
            handle.indexes.update((yield from walk))
        outputs: list[np.ndarray] = []
        tasks: list[tuple[int, _chunks.Layout, tuple[int, ...], int, bool]] = []
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
            if hi <= lo:
                continue
            if layout.layout != _chunks.CHUNKED:
                tasks.append((len(outputs) - 1, layout, (lo,), lo, True))
                ranges.append((layout.address + lo * layout.row_bytes, layout.address + hi * layout.row_bytes))
                keys.append((path, -1))
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
            if layout.layout != _chunks.CHUNKED or not layout.n_elements:
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
                    _decode.mask_fill(out, stored, fill)
                region = out
            else:
                region = _decode.place(out, _decode.decode_chunk(layout, blob, self.name), start, lo, fill)
            if convert is not None and region.size:
                convert(region)

        # one shared counter: the threads end within a chunk of each other, and this thread works too
        _decode.each(len(job.tasks), lambda i: one(job.tasks[i], blobs[i]), caller_works)
        return job.outputs


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


def _drive(steps: Generator[Any, Any, Any], source: ByteSource) -> Any:
    """Run a plan generator to its end with blocking fetches."""
    try:
        ranges = next(steps)
        while True:
            ranges = steps.send(source.read([a for a, _ in ranges], [b for _, b in ranges]))
    except StopIteration as done:
        return done.value


def _bounds(layout: _chunks.Layout, start: int | None, stop: int | None) -> tuple[int, int]:
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


class RaggedArray(BackendArray):
    """Rows of several same-typed datasets concatenated along the first axis.

    Arrays of one Dataset share ``siblings``: with read-ahead on (remote granules), reading rows of
    one fetches the compressed chunks of the same rows of the others in the same requests, so a
    plain ``Dataset.load()`` pays the round trips once rather than once per variable.
    """

    def __init__(
        self,
        reader: GranuleReader,
        pieces: list[Piece],
        dtype: np.dtype,
        trailing_shape: tuple[int, ...] = (),
        siblings: list[RaggedArray] | None = None,
        fill: Any = None,
        convert: tuple[np.dtype, Convert] | None = None,
    ):
        self.reader = reader
        self.pieces = [p for p in pieces if p.rows > 0]
        self.dtype = np.dtype(dtype)
        self.fill = fill  # stored values equal to it are read as NaN (dtype is then floating point)
        # (decoded dtype, function): values decode as that dtype, into the memory of the output, which
        # the function then turns into ``dtype`` in place (same item size)
        self.convert = convert
        self.shape = (sum(p.rows for p in self.pieces), *trailing_shape)
        self._offsets = np.cumsum([0] + [p.rows for p in self.pieces])
        self.siblings = siblings if siblings is not None else []
        self.siblings.append(self)

    def __getitem__(self, key: indexing.ExplicitIndexer) -> np.ndarray:
        return indexing.explicit_indexing_adapter(key, self.shape, indexing.IndexingSupport.BASIC, self._getitem)

    async def async_getitem(self, key: indexing.ExplicitIndexer) -> np.ndarray:
        return await indexing.async_explicit_indexing_adapter(
            key, self.shape, indexing.IndexingSupport.BASIC, self._getitem_async
        )

    def _getitem(self, key: tuple) -> np.ndarray:
        rows, lo, hi = self._rows(key)
        block, into = self._allocate(lo, hi)
        if hi > lo:
            # read-ahead only for whole variables (what load() and .values ask for), not for dask's
            # chunk tasks, which may run in other processes and would fetch their siblings' bytes again
            whole = lo == 0 and hi == self.shape[0]
            self.reader.read(*self._requests(lo, hi, ahead=whole), into=into, **self._decoding(len(into)))
        return self._finish(key, rows, lo, block)

    async def _getitem_async(self, key: tuple) -> np.ndarray:
        rows, lo, hi = self._rows(key)
        block, into = self._allocate(lo, hi)
        if hi > lo:
            await self.reader.read_async(*self._requests(lo, hi, ahead=False), into=into, **self._decoding(len(into)))
        return self._finish(key, rows, lo, block)

    def _decoding(self, n: int) -> dict[str, list[Any]]:
        convert = self.convert[1] if self.convert is not None else None
        return {"fills": [self.fill] * n, "converts": [convert] * n}

    def _allocate(self, lo: int, hi: int) -> tuple[np.ndarray, list[np.ndarray]]:
        """One output for rows [lo, hi) and its views, one per piece, for the reader to fill."""
        block = np.empty((hi - lo, *self.shape[1:]), dtype=self.dtype)
        decoded = block.view(self.convert[0]) if self.convert is not None else block
        into, at = [], 0
        for _, a, b in self._pieces_for(lo, hi):
            assert a is not None and b is not None
            into.append(decoded[at : at + b - a])
            at += b - a
        return block, into

    def _rows(self, key: tuple) -> tuple[range, int, int]:
        first = key[0]
        n = self.shape[0]
        rows = range(*first.indices(n)) if isinstance(first, slice) else range(first % n, first % n + 1)
        if len(rows) == 0:
            return rows, 0, 0
        return rows, min(rows[0], rows[-1]), max(rows[0], rows[-1]) + 1

    def _finish(self, key: tuple, rows: range, lo: int, block: np.ndarray) -> np.ndarray:
        first, rest = key[0], key[1:]
        if len(rows) and (rows.step != 1 or len(rows) != block.shape[0]):
            block = block[np.asarray(rows) - lo]
        if not isinstance(first, slice):
            block = block[0]
            out = block[tuple(rest)] if rest else block
        else:
            out = block[(slice(None), *rest)] if rest else block
        return np.asarray(out, dtype=self.dtype)

    def _pieces_for(self, lo: int, hi: int) -> list[Request]:
        found: list[Request] = []
        for piece, start in zip(self.pieces, self._offsets[:-1], strict=True):
            a, b = max(lo, start), min(hi, start + piece.rows)
            if a < b:
                found.append((piece.path, int(a - start), int(b - start)))
        return found

    def _requests(self, lo: int, hi: int, ahead: bool = True) -> tuple[list[Request], list[Request]]:
        mine = self._pieces_for(lo, hi)
        others = [r for s in self.siblings if s is not self for r in s._pieces_for(lo, hi)] if ahead else []
        if (lo, hi) == (0, 1) and self.shape[0] > 1:
            # xarray checks that times decode by reading the first value, then the last: one round trip
            others += self._pieces_for(self.shape[0] - 1, self.shape[0])
        return mine, others


class RepeatedLabelArray(BackendArray):
    """A per-row label (e.g. the beam name) from run lengths, computed on access with no I/O."""

    def __init__(self, labels: list[str], counts: list[int]):
        self.labels = np.asarray(labels, dtype=f"<U{max((len(x) for x in labels), default=4)}")
        self.counts = np.asarray(counts, dtype=np.int64)
        self.dtype = self.labels.dtype
        self.shape = (int(self.counts.sum()),)

    def __getitem__(self, key: indexing.ExplicitIndexer) -> np.ndarray:
        return indexing.explicit_indexing_adapter(key, self.shape, indexing.IndexingSupport.OUTER, self._getitem)

    async def async_getitem(self, key: indexing.ExplicitIndexer) -> np.ndarray:
        return self[key]

    def _getitem(self, key: tuple) -> np.ndarray:
        if isinstance(key[0], slice) and key[0].step in (None, 1):
            # a range of rows (the usual load): run lengths cut to the range, then repeated
            start, stop, _ = key[0].indices(self.shape[0])
            ends = np.cumsum(self.counts)
            counts = np.clip(np.minimum(ends, stop) - np.maximum(ends - self.counts, start), 0, None)
            return np.repeat(self.labels, counts)
        rows = np.arange(self.shape[0])[key[0]]
        which = np.searchsorted(np.cumsum(self.counts), rows, side="right")
        return self.labels[which]
