"""Segments to per-cell sums to ATL20 statistics, in plain numpy (no xarray, no I/O).

For every (time bin, grid cell) that holds segments, with L the segment length
(``height_segment_length_seg``) and h the freeboard (``beam_fb_height``), summed in float64
(ATL20 ATBD, as summarised in NSIDC's ATL20 material):

- ``n_segments``      N
- ``mean_seg_length`` sum(L) / N
- ``mean_fb``         sum(L h) / sum(L)                                  (length-weighted mean)
- ``std_fb``          sqrt(max(sum(L h^2) / sum(L) - mean_fb^2, 0))      (length-weighted std, not the variance)

Sums are kept sparse, over the occupied cell keys only (:class:`CellSums`), so batches, chunks and
granules combine by key in any order and memory follows the occupied cells, not the grid.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from is2grid.grids import Grid, to_xy
from is2grid.request import GridRequest

__all__ = ["STATISTICS", "CellSums", "cell_sums", "combine", "dense_codes", "scatter", "statistics", "weights"]

#: the statistics, in the order :func:`statistics` returns them
STATISTICS = ("n_segments", "mean_seg_length", "mean_fb", "std_fb")


@dataclass
class CellSums:
    """Per-cell sums over the occupied keys (see :meth:`is2grid.grids.Grid.keys`), sorted by key.

    Attributes
    ----------
    keys : numpy.ndarray of int64
        Sorted unique (time bin, cell) keys.
    count, sum_length, sum_length_fb, sum_length_fb2 : numpy.ndarray
        N, sum(L), sum(L h) and sum(L h^2) of each key.
    n_segments : int
        Segments summed.
    t_min, t_max : int or None
        First and last summed segment time, ns since 1970.
    """

    keys: np.ndarray
    count: np.ndarray
    sum_length: np.ndarray
    sum_length_fb: np.ndarray
    sum_length_fb2: np.ndarray
    n_segments: int = 0
    t_min: int | None = None
    t_max: int | None = None

    @classmethod
    def empty(cls) -> CellSums:
        """Sums of no segments."""
        z = np.zeros(0)
        return cls(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), z, z, z, 0)


def _kept(columns: Mapping[str, np.ndarray], request: GridRequest) -> tuple[np.ndarray, np.ndarray]:
    """Which segments count, and their UTC times."""
    keep = request.filters.mask(
        np.asarray(columns["latitude"], dtype=np.float64),
        np.asarray(columns["longitude"], dtype=np.float64),
        np.asarray(columns["height_segment_length_seg"], dtype=np.float64),
        np.asarray(columns["beam_fb_height"], dtype=np.float64),
        columns.get("height_segment_type"),
        columns.get("beam_fb_quality_flag"),
    )
    times = np.asarray(columns["delta_time"], dtype="datetime64[ns]")
    keep &= ~np.isnat(times)
    return keep, times


def _cells(columns, keep: np.ndarray, grid: Grid):
    """Global row and column of the kept segments, and which of them fall inside ``grid``."""
    x, y = to_xy(np.asarray(columns["longitude"])[keep], np.asarray(columns["latitude"])[keep], grid.crs)
    return grid.cell_index(x, y)


def cell_sums(columns: Mapping[str, np.ndarray], request: GridRequest) -> CellSums:
    """Sums of one batch of segments over its occupied (time bin, cell) keys.

    Parameters
    ----------
    columns : mapping of str to numpy.ndarray
        The segment variables of ``request.needed``; ``delta_time`` as UTC ``datetime64``.
    request : GridRequest
        Points outside its target (window or grid) are dropped: row and column each checked.

    Returns
    -------
    CellSums

    Examples
    --------
    >>> from is2grid.request import GridRequest
    >>> request = GridRequest.create("ease2", res=25000, hemisphere="south")
    >>> columns = {"latitude": np.array([-75.0, -75.0]), "longitude": np.array([10.0, 10.0]),
    ...            "delta_time": np.array(["2019-09-15T01", "2019-09-15T02"], dtype="datetime64[ns]"),
    ...            "beam_fb_height": np.array([0.2, 0.4]), "height_segment_length_seg": np.array([10.0, 30.0])}
    >>> sums = cell_sums(columns, request)
    >>> sums.count, sums.sum_length_fb / sums.sum_length
    (array([2]), array([0.35]))
    """
    keep, times = _kept(columns, request)
    if not keep.any():
        return CellSums.empty()
    target = request.target
    row, col, inside = _cells(columns, keep, target)
    times = times[keep][inside]
    keys = target.keys(request.bins.ordinals(times), row[inside], col[inside])
    length = np.asarray(columns["height_segment_length_seg"], dtype=np.float64)[keep][inside]
    fb = np.asarray(columns["beam_fb_height"], dtype=np.float64)[keep][inside]
    sums = _sum_by_key(keys, length, fb)
    if keys.size:
        ns = times.astype(np.int64)
        sums.t_min, sums.t_max = int(ns.min()), int(ns.max())
    return sums


def _sum_by_key(keys: np.ndarray, length: np.ndarray, fb: np.ndarray) -> CellSums:
    import flox

    if keys.size == 0:
        return CellSums.empty()
    # factorize first: flox then sums over the occupied keys only, never a dense (time x grid) table
    codes, uniques = pd.factorize(keys, sort=False)
    order = np.argsort(uniques)
    lh = length * fb
    stacked = np.stack([length, lh, lh * fb])
    groups = pd.RangeIndex(len(uniques))
    total = flox.groupby_reduce(stacked, codes, func="sum", expected_groups=groups, engine="numpy")[0]
    count = np.bincount(codes, minlength=len(uniques))
    total = total[:, order]
    return CellSums(uniques[order].astype(np.int64), count[order], total[0], total[1], total[2], int(keys.size))


def combine(*sums: CellSums) -> CellSums:
    """Merge cell sums by key (associative and commutative: any split of the input gives the same total).

    Examples
    --------
    >>> a = CellSums(np.array([1, 5]), np.array([1, 2]), np.ones(2), np.ones(2), np.ones(2), 3)
    >>> b = CellSums(np.array([5]), np.array([4]), np.ones(1), np.ones(1), np.ones(1), 4)
    >>> merged = combine(a, b)
    >>> merged.keys, merged.count, merged.n_segments
    (array([1, 5]), array([1, 6]), 7)
    """
    sums = tuple(s for s in sums if s.keys.size)
    if not sums:
        return CellSums.empty()
    if len(sums) == 1:
        return sums[0]
    import flox

    codes, uniques = pd.factorize(np.concatenate([s.keys for s in sums]), sort=True)
    stacked = np.stack(
        [np.concatenate([getattr(s, name) for s in sums]).astype(np.float64) for name in _SUMMED],
    )
    groups = pd.RangeIndex(len(uniques))
    total = flox.groupby_reduce(stacked, codes, func="sum", expected_groups=groups, engine="numpy")[0]
    return CellSums(
        uniques.astype(np.int64),
        total[0].round().astype(np.int64),
        total[1],
        total[2],
        total[3],
        sum(s.n_segments for s in sums),
        min((s.t_min for s in sums if s.t_min is not None), default=None),
        max((s.t_max for s in sums if s.t_max is not None), default=None),
    )


_SUMMED = ("count", "sum_length", "sum_length_fb", "sum_length_fb2")


def statistics(count, sum_length, sum_length_fb, sum_length_fb2, min_segments: int = 1):
    """The four ATL20 statistics from the sums; NaN where ``count < min_segments``.

    Examples
    --------
    >>> n, mean_len, mean_fb, std_fb = statistics(np.array([2]), np.array([40.0]), np.array([14.0]),
    ...                                           np.array([5.2]))
    >>> float(mean_len[0]), float(mean_fb[0]), round(float(std_fb[0]), 6)
    (20.0, 0.35, 0.086603)
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        valid = count >= max(min_segments, 1)
        mean_length = np.where(valid, sum_length / count, np.nan)
        mean_fb = np.where(valid, sum_length_fb / sum_length, np.nan)
        var = np.where(count == 1, 0.0, sum_length_fb2 / sum_length - mean_fb**2)
        std_fb = np.where(valid, np.sqrt(np.clip(var, 0.0, None)), np.nan)
    return count, mean_length, mean_fb, std_fb


def scatter(sums: CellSums, window: Grid, ordinals: np.ndarray, min_segments: int = 1) -> tuple[np.ndarray, ...]:
    """The statistics of the occupied keys as dense ``(time, y, x)`` arrays over ``window``.

    Keys outside the window or the time bins are left out; only the output is dense.
    """
    shape = (len(ordinals), window.nrows, window.ncols)
    out = (np.zeros(shape, dtype=np.int32), *(np.full(shape, np.nan) for _ in range(3)))
    if not (sums.keys.size and all(shape)):
        return out
    ordinal, row, col = window.split_keys(sums.keys)
    t = np.searchsorted(ordinals, ordinal)
    ok = (t < len(ordinals)) & (ordinals[np.minimum(t, len(ordinals) - 1)] == ordinal)
    r, c = row - window.row0, col - window.col0
    ok &= (r >= 0) & (r < window.nrows) & (c >= 0) & (c < window.ncols)
    stats = statistics(
        sums.count[ok], sums.sum_length[ok], sums.sum_length_fb[ok], sums.sum_length_fb2[ok], min_segments
    )
    where = (t[ok], r[ok], c[ok])
    for target, values in zip(out, stats, strict=True):
        target[where] = values
    return out


def dense_codes(columns: Mapping[str, np.ndarray], request: GridRequest) -> np.ndarray:
    """Each segment's flat index into the fixed ``(time, y, x)`` output of ``request``, -1 if it does not count.

    For a request with :attr:`~is2grid.request.GridRequest.fixed_extent`: the group codes of a dask
    map-reduce whose output shape is known before any data is read.
    """
    window, ordinals = request.window, request.ordinals
    assert window is not None and ordinals is not None, "dense_codes needs a request with a fixed extent"
    n = len(np.asarray(columns["latitude"]))
    codes = np.full(n, -1, dtype=np.int64)
    keep, times = _kept(columns, request)
    if not keep.any():
        return codes
    row, col, inside = _cells(columns, keep, window)
    ordinal = request.bins.ordinals(times[keep])
    t = np.searchsorted(ordinals, ordinal)
    inside &= (t < len(ordinals)) & (ordinals[np.minimum(t, len(ordinals) - 1)] == ordinal)
    flat = (t * window.nrows + (row - window.row0)) * window.ncols + (col - window.col0)
    codes[np.flatnonzero(keep)[inside]] = flat[inside]
    return codes


def weights(length, fb):
    """The summed quantities per segment, stacked: 1, L, L h, L h^2 (numpy or dask arrays)."""
    length = length.astype(np.float64)
    lh = length * fb.astype(np.float64)
    return np.stack([np.ones_like(length), length, lh, lh * fb.astype(np.float64)])
