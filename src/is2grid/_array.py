"""Lazy arrays over one or more HDF5 datasets laid end to end (the ragged ``segment`` dimension).

Each array holds only a picklable :class:`GranuleReader` and the list of (dataset path, rows)
pieces it spans; data is read on indexing, only the rows asked for.
"""

from __future__ import annotations

import ast
import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
from xarray.backends import BackendArray
from xarray.backends.file_manager import CachingFileManager
from xarray.backends.locks import SerializableLock
from xarray.core import indexing

from is2grid._io import open_h5coro
from is2grid.errors import CorruptGranuleError, GranuleError

#: h5coro keeps every 4 MB line it reads; past this many lines a granule's cache is dropped.
MAX_CACHED_LINES = 16
_POOL: ThreadPoolExecutor | None = None


def _pool() -> ThreadPoolExecutor:
    """One process-wide pool for dataset reads (h5coro itself starts a new pool on every call)."""
    global _POOL
    with _LOCKS_GUARD:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=8, thread_name_prefix="is2grid-read")
        return _POOL


def _read_metadata(handle, path: str) -> Any:
    from h5coro.h5dataset import H5Dataset

    return H5Dataset(handle, path, earlyExit=True, metaOnly=True, enableAttributes=False).meta


def _read_dataset(handle, path: str, hyperslice: list) -> np.ndarray:
    from h5coro.h5dataset import H5Dataset

    # enableFill=False skips h5coro's per-element Python loop that pre-fills the output with the
    # fill value (0.1-0.25 s per 300k-element float32 dataset, most of a granule's read time). It only
    # matters for chunks never written, and ATL10 datasets are written whole: values stay equal to
    # h5py's (tests/test_engine_values.py).
    dataset = H5Dataset(
        handle, path, hyperslice, enableFill=False, earlyExit=True, metaOnly=False, enableAttributes=False
    )
    return dataset.values


_LOCKS: dict[str, SerializableLock] = {}
_LOCKS_GUARD = threading.Lock()


def _granule_lock(url: str) -> SerializableLock:
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(url, SerializableLock(token=f"is2grid:{url}"))


@dataclass(frozen=True)
class Piece:
    """``rows`` rows of dataset ``path``; ``contiguous`` datasets are read whole (h5coro bug)."""

    path: str
    rows: int
    contiguous: bool = False


def as_text(value: Any) -> str:
    """Decode a string dataset element as h5coro returns it (bytes, or the repr of a bytearray)."""
    if isinstance(value, np.ndarray):
        value = value.ravel()[0] if value.size else ""
    if isinstance(value, str) and value.startswith(("bytearray(b", "b'", 'b"')):
        value = ast.literal_eval(value[len("bytearray(") : -1] if value.startswith("bytearray(") else value)
    if isinstance(value, bytes | bytearray | np.bytes_):
        value = bytes(value).decode("utf-8", "replace")
    return str(value).strip().strip("\x00").strip()


class GranuleReader:
    """Reads datasets of one granule through a shared, picklable h5coro handle."""

    def __init__(self, url: str, credentials: Any = None):
        self.url = url
        self.credentials = credentials
        self.lock = _granule_lock(url)
        # the file manager hashes its arguments: a credentials dict travels as sorted items
        frozen = tuple(sorted(credentials.items())) if isinstance(credentials, dict) else credentials
        self.manager = CachingFileManager(open_h5coro, url, kwargs={"credentials": frozen}, lock=self.lock)

    def __getstate__(self):
        return {"url": self.url, "credentials": self.credentials, "manager": self.manager}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.lock = _granule_lock(self.url)

    def close(self) -> None:
        self.manager.close()

    def _handle(self):
        return self.manager.acquire(needs_lock=False)

    @contextlib.contextmanager
    def _guarded(self, what: str) -> Iterator[Any]:
        """The h5coro handle, under the granule's lock; h5coro's own failures become CorruptGranuleError."""
        with self.lock:
            handle = self._handle()
            try:
                yield handle
            except GranuleError:
                raise
            except Exception as err:
                raise CorruptGranuleError(
                    f"{self.url}: {what} failed ({type(err).__name__}: {err}). "
                    "The file is probably truncated or damaged: download it again."
                ) from err
            finally:
                if len(handle.cache) > MAX_CACHED_LINES:
                    handle.cache.clear()

    def listing(self, group: str) -> tuple[dict[str, Any], set[str]]:
        """Datasets (name -> h5coro metadata) and subgroup names of ``group``; empty if it is missing."""
        with self._guarded(f"reading the structure of group {group!r}") as handle:
            variables, _, groups = handle.list(group, w_attr=False)
        return {k: v["__metadata__"] for k, v in variables.items()}, set(groups)

    def links(self, group: str) -> set[str]:
        """Names of the members of ``group`` (datasets and subgroups), without reading their headers."""
        with self._guarded(f"reading the structure of group {group!r}") as handle:
            return set(handle.inspectPath(group, w_attr=False)[0])

    def metadata(self, paths: list[str]) -> dict[str, Any]:
        """h5coro metadata (shape, type, layout) of datasets, read in parallel."""
        with self._guarded(f"reading the description of {paths}") as handle:
            futures = [_pool().submit(_read_metadata, handle, path) for path in paths]
            return {path: f.result() for path, f in zip(paths, futures, strict=True)}

    def read(self, requests: Sequence[tuple[str, int | None, int | None]]) -> list[np.ndarray]:
        """Read ``(path, start, stop)`` row ranges (``None`` bounds: the whole dataset) in parallel."""
        slices = [[(int(a), int(b))] if a is not None and b is not None else [] for _, a, b in requests]
        with self._guarded(f"reading {[r[0] for r in requests]}") as handle:
            futures = [
                _pool().submit(_read_dataset, handle, path, hyperslice)
                for (path, _, _), hyperslice in zip(requests, slices, strict=True)
            ]
            values = [f.result() for f in futures]
        for (path, _, _), value in zip(requests, values, strict=True):
            if value is None:
                raise CorruptGranuleError(
                    f"{self.url}: dataset {path!r} could not be read (missing, truncated or damaged). "
                    "Download the granule again; if it persists, report it with the granule name."
                )
        return values


class RaggedArray(BackendArray):
    """Rows of several same-typed datasets concatenated along the first axis."""

    def __init__(
        self,
        reader: GranuleReader,
        pieces: list[Piece],
        dtype: np.dtype,
        trailing_shape: tuple[int, ...] = (),
        transform: Callable[[np.ndarray], np.ndarray] | None = None,
        stored_dtype: np.dtype | None = None,
    ):
        self.reader = reader
        self.pieces = [p for p in pieces if p.rows > 0]
        self.stored_dtype = np.dtype(stored_dtype if stored_dtype is not None else dtype)
        self.dtype = np.dtype(dtype)
        self.shape = (sum(p.rows for p in self.pieces), *trailing_shape)
        self.transform = transform
        self._offsets = np.cumsum([0] + [p.rows for p in self.pieces])

    def __getitem__(self, key: indexing.ExplicitIndexer) -> np.ndarray:
        return indexing.explicit_indexing_adapter(key, self.shape, indexing.IndexingSupport.BASIC, self._getitem)

    def _getitem(self, key: tuple) -> np.ndarray:
        first, rest = key[0], key[1:]
        n = self.shape[0]
        rows = range(*first.indices(n)) if isinstance(first, slice) else range(first % n, first % n + 1)
        if len(rows) == 0:
            block = np.empty((0, *self.shape[1:]), dtype=self.stored_dtype)
            lo = 0
        else:
            lo, hi = min(rows[0], rows[-1]), max(rows[0], rows[-1]) + 1
            block = self._read_rows(lo, hi)
            if rows.step != 1 or len(rows) != hi - lo:
                block = block[np.asarray(rows) - lo]
        if not isinstance(first, slice):
            block = block[0]
            out = block[tuple(rest)] if rest else block
        else:
            out = block[(slice(None), *rest)] if rest else block
        out = np.asarray(out, dtype=self.stored_dtype)
        return self.transform(out) if self.transform is not None else out

    def _read_rows(self, lo: int, hi: int) -> np.ndarray:
        requests: list[tuple[str, int | None, int | None]] = []
        trims = []
        for piece, start in zip(self.pieces, self._offsets[:-1], strict=True):
            a, b = max(lo, start), min(hi, start + piece.rows)
            if a >= b:
                continue
            if piece.contiguous:
                requests.append((piece.path, None, None))
                trims.append(slice(a - start, b - start))
            else:
                requests.append((piece.path, a - start, b - start))
                trims.append(slice(None))
        values = self.reader.read(requests)
        parts = [np.asarray(v).reshape((-1, *self.shape[1:]))[t] for v, t in zip(values, trims, strict=True)]
        return np.concatenate(parts) if len(parts) > 1 else parts[0]


class RepeatedLabelArray(BackendArray):
    """A per-row label (e.g. the beam name) from run lengths, computed on access with no I/O."""

    def __init__(self, labels: list[str], counts: list[int]):
        self.labels = np.asarray(labels, dtype=f"<U{max((len(x) for x in labels), default=4)}")
        self.counts = np.asarray(counts, dtype=np.int64)
        self.dtype = self.labels.dtype
        self.shape = (int(self.counts.sum()),)

    def __getitem__(self, key: indexing.ExplicitIndexer) -> np.ndarray:
        return indexing.explicit_indexing_adapter(key, self.shape, indexing.IndexingSupport.OUTER, self._getitem)

    def _getitem(self, key: tuple) -> np.ndarray:
        rows = np.arange(self.shape[0])[key[0]]
        which = np.searchsorted(np.cumsum(self.counts), rows, side="right")
        return self.labels[which]
