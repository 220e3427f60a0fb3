"""The lazy arrays of the backends: a ragged dataset laid end to end, and the repeated beam label."""

from __future__ import annotations

from typing import Any

import numpy as np
from xarray.backends import BackendArray
from xarray.core import indexing

from is2grid.io.reader import Convert, GranuleReader, Piece, Request


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
