"""The occupied cells of a gridded result, kept sparse, and combined k x k exactly from their sums.

The explorer draws only cells that hold segments: a month of daily 6.25 km bins is mostly empty, so
the cells of every bin travel with a saved page at the resolution gridded. When a view shows more
cells than it has pixels, cells are combined k x k (aligned on the grid, so the same at every pan)
from their sums, never averaged as values: counts add up and every mean stays length-weighted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr

from is2grid.grid import reduction

__all__ = ["Cells", "occupied"]


@dataclass(frozen=True)
class Cells:
    """The occupied cells of one time bin, at ``factor`` x ``factor`` grid cells each.

    ``row``/``col`` index the (combined) cells; ``count`` is N of all segments, ``known`` N of those in
    cells whose statistics are known (cells below ``min_segments`` have a count but no statistics).
    """

    row: np.ndarray
    col: np.ndarray
    count: np.ndarray
    known: np.ndarray
    sum_length: np.ndarray
    sum_length_h: np.ndarray
    sum_length_h2: np.ndarray
    factor: int = 1

    def __len__(self) -> int:
        return int(self.row.size)

    def statistics(self) -> dict[str, np.ndarray]:
        """``count`` (all segments), and ``mean_length``, ``mean``, ``std`` (NaN where none are known)."""
        _, mean_length, mean, std = reduction.statistics(self.known, self.sum_length, self.sum_length_h,
                                                         self.sum_length_h2)  # fmt: skip
        return {"count": self.count, "mean_length": mean_length, "mean": mean, "std": std}

    def coarsened(self, factor: int) -> Cells:
        """These cells combined ``factor`` x ``factor`` (a multiple of the current factor), exactly.

        Examples
        --------
        >>> one = Cells(np.array([0, 1]), np.array([0, 1]), np.array([2, 1]), np.array([2, 1]),
        ...             np.array([40.0, 10.0]), np.array([14.0, 5.0]), np.array([5.2, 25.0]))
        >>> two = one.coarsened(2)
        >>> len(two), int(two.count[0]), float(two.statistics()["mean"][0])
        (1, 3, 0.38)
        """
        if factor == self.factor:
            return self
        step = factor // self.factor
        if step * self.factor != factor:
            raise ValueError(f"factor {factor} is not a multiple of {self.factor}")
        row, col = self.row // step, self.col // step
        width = int(col.max()) + 1 if col.size else 1
        codes, index = np.unique(row.astype(np.int64) * width + col, return_inverse=True)
        count, known, length, length_h, length_h2 = (
            np.bincount(index, weights=v, minlength=codes.size) for v in self._sums()
        )
        return Cells(
            (codes // width).astype(np.int32), (codes % width).astype(np.int32), np.rint(count).astype(np.int64),
            np.rint(known).astype(np.int64), length, length_h, length_h2, factor=factor,
        )  # fmt: skip

    def within(self, rows: tuple[float, float], cols: tuple[float, float]) -> Cells:
        """The cells whose index lies in ``[rows[0], rows[1]]`` and ``[cols[0], cols[1]]``."""
        inside = (self.row >= rows[0]) & (self.row <= rows[1]) & (self.col >= cols[0]) & (self.col <= cols[1])
        return self.subset(inside)

    def subset(self, keep: np.ndarray) -> Cells:
        """The cells where ``keep`` is true."""
        count, known, length, length_h, length_h2 = (v[keep] for v in self._sums())
        return Cells(self.row[keep], self.col[keep], count, known, length, length_h, length_h2, factor=self.factor)

    def _sums(self):
        return self.count, self.known, self.sum_length, self.sum_length_h, self.sum_length_h2


def occupied(frame: xr.Dataset, names: list[str]) -> Cells:
    """The cells of one time bin that hold segments, from its four statistics ``names`` (count first).

    Examples
    --------
    >>> frame = xr.Dataset({"n": (("y", "x"), [[0, 2]]), "l": (("y", "x"), [[np.nan, 20.0]]),
    ...                     "m": (("y", "x"), [[np.nan, 0.35]]), "s": (("y", "x"), [[np.nan, 0.0]])})
    >>> cells = occupied(frame, ["n", "l", "m", "s"])
    >>> cells.row.tolist(), cells.col.tolist(), float(cells.statistics()["mean"][0])
    ([0], [1], 0.35)
    """
    count = np.asarray(frame[names[0]].values)
    row, col = np.nonzero(count > 0)
    count = count[row, col].astype(np.int64)
    mean_length, mean, std = (np.asarray(frame[n].values, dtype=np.float64)[row, col] for n in names[1:])
    known = np.where(np.isfinite(mean_length), count, 0)
    sums = (np.nan_to_num(s) for s in reduction.length_sums(known, mean_length, mean, std))
    return Cells(row.astype(np.int32), col.astype(np.int32), count, known, *sums)
