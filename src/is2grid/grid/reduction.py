"""Segments to per-cell sums to ATL20 statistics, in plain numpy (no xarray, no I/O).

For every (time bin, grid cell) that holds segments, with L the segment length
(``height_segment_length_seg``) and h the gridded variable (by default ATL10's freeboard
``beam_fb_height``), summed in float64 (ATL20 ATBD, as summarised in NSIDC's ATL20 material):

- ``n_segments``      N
- ``mean_seg_length`` sum(L) / N
- ``mean_fb``         sum(L h) / sum(L)                                  (length-weighted mean)
- ``std_fb``          sqrt(max(sum(L h^2) / sum(L) - mean_fb^2, 0))      (length-weighted std, not the variance)

(``mean_fb``/``std_fb`` are the names for ATL10 freeboard; other variables get ``mean_<stem>``/``std_<stem>``,
see :meth:`is2grid.products.Product.statistics`.)

Sums are kept sparse, over the occupied cell keys only (:class:`CellSums`), so batches, chunks and
granules combine by key in any order and memory follows the occupied cells, not the grid.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from is2grid.grid.grids import Grid, to_xy
from is2grid.grid.request import GridRequest

__all__ = [
    "STATISTICS",
    "CellSums",
    "cell_sums",
    "combine",
    "dense_codes",
    "length_sums",
    "scatter",
    "split_at",
    "statistics",
    "sums_of_statistics",
    "weights",
]

#: the statistics of ATL10 freeboard, in the order :func:`statistics` returns them (others: ``GridRequest.names``)
STATISTICS = ("n_segments", "mean_seg_length", "mean_fb", "std_fb")


@dataclass
class CellSums:
    """Per-cell sums over the occupied keys (see :meth:`is2grid.grid.grids.Grid.keys`), sorted by key.

    Attributes
    ----------
    keys : numpy.ndarray of int64
        Sorted unique (time bin, cell) keys.
    count, sum_length, sum_length_h, sum_length_h2 : numpy.ndarray
        N, sum(L), sum(L h) and sum(L h^2) of each key.
    n_segments : int
        Segments summed.
    t_min, t_max : int or None
        First and last summed segment time, ns since 1970.
    """

    keys: np.ndarray
    count: np.ndarray
    sum_length: np.ndarray
    sum_length_h: np.ndarray
    sum_length_h2: np.ndarray
    n_segments: int = 0
    t_min: int | None = None
    t_max: int | None = None

    @classmethod
    def empty(cls) -> CellSums:
        """Sums of no segments."""
        z = np.zeros(0)
        return cls(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), z, z, z, 0)


def _kept(columns: Mapping[str, np.ndarray], request: GridRequest):
    """The kept segments: latitude, longitude, length, gridded value (float64) and UTC time of each."""
    lat, lon, length, fb = (
        np.asarray(columns[n], dtype=np.float64)
        for n in ("latitude", "longitude", request.product.length, request.variable)
    )
    filters = request.filters
    seg_type, quality = columns.get(filters.type_variable), columns.get(filters.quality_variable)
    keep = request.filters.mask(lat, lon, length, fb, seg_type, quality)
    times = np.asarray(columns["delta_time"], dtype="datetime64[ns]")
    keep &= ~np.isnat(times)
    return keep, lat[keep], lon[keep], length[keep], fb[keep], times[keep]


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
    >>> from is2grid.grid.request import GridRequest
    >>> request = GridRequest.create("ease2", res=25000, hemisphere="south")
    >>> columns = {"latitude": np.array([-75.0, -75.0]), "longitude": np.array([10.0, 10.0]),
    ...            "delta_time": np.array(["2019-09-15T01", "2019-09-15T02"], dtype="datetime64[ns]"),
    ...            "beam_fb_height": np.array([0.2, 0.4]), "height_segment_length_seg": np.array([10.0, 30.0])}
    >>> sums = cell_sums(columns, request)
    >>> sums.count, sums.sum_length_h / sums.sum_length
    (array([2]), array([0.35]))
    """
    _, lat, lon, length, fb, times = _kept(columns, request)
    target = request.target
    row, col, inside = target.cell_index(*to_xy(lon, lat, target.crs))
    if not inside.any():
        return CellSums.empty()
    if not inside.all():
        times, row, col, length, fb = (a[inside] for a in (times, row, col, length, fb))
    keys = target.keys(request.bins.ordinals(times), row, col)
    # Along a track, consecutive segments mostly fall in the same cell: each run of equal keys is summed
    # first, in one pass, and flox then groups a few thousand runs instead of a million segments.
    starts = np.flatnonzero(np.concatenate(([True], keys[1:] != keys[:-1])))
    stacked = np.empty((4, starts.size))  # N, L, L h, L h^2 of each run
    stacked[0] = np.diff(np.append(starts, keys.size))
    stacked[1] = np.add.reduceat(length, starts)
    product = length * fb
    stacked[2] = np.add.reduceat(product, starts)
    product *= fb
    stacked[3] = np.add.reduceat(product, starts)
    sums = _summed(keys[starts], stacked, keys.size)
    ns = times.astype(np.int64)
    sums.t_min, sums.t_max = int(ns.min()), int(ns.max())
    return sums


def _summed(keys: np.ndarray, stacked: np.ndarray, n_segments: int) -> CellSums:
    """Sum the rows of ``stacked`` (1 or N, L, L h, L h^2) over ``keys``; flox groups the occupied keys only."""
    import flox

    total, *groups = flox.groupby_reduce(stacked, keys, func="sum", engine="numpy")
    count = total[0].round().astype(np.int64)
    return CellSums(np.asarray(groups[0], dtype=np.int64), count, total[1], total[2], total[3], n_segments)


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
    keys = np.concatenate([s.keys for s in sums])
    stacked = np.stack([np.concatenate([getattr(s, name) for s in sums]).astype(np.float64) for name in _SUMMED])
    total = _summed(keys, stacked, sum(s.n_segments for s in sums))
    total.t_min = min((s.t_min for s in sums if s.t_min is not None), default=None)
    total.t_max = max((s.t_max for s in sums if s.t_max is not None), default=None)
    return total


_SUMMED = ("count", "sum_length", "sum_length_h", "sum_length_h2")


def split_at(sums: CellSums, key: int) -> tuple[CellSums, CellSums]:
    """The sums of the keys below ``key``, and of the others (``n_segments`` split by the counts).

    Examples
    --------
    >>> a = CellSums(np.array([1, 5]), np.array([1, 2]), np.ones(2), np.ones(2), np.ones(2), 3)
    >>> low, high = split_at(a, 5)
    >>> low.keys, high.keys, low.n_segments, high.n_segments
    (array([1]), array([5]), 1, 2)
    """
    i = int(np.searchsorted(sums.keys, key))
    parts = []
    for part in (slice(None, i), slice(i, None)):
        count = sums.count[part]
        parts.append(
            CellSums(
                sums.keys[part],
                count,
                sums.sum_length[part],
                sums.sum_length_h[part],
                sums.sum_length_h2[part],
                int(count.sum()),
                sums.t_min,
                sums.t_max,
            )
        )
    return parts[0], parts[1]


def length_sums(count, mean_length, mean_fb, std_fb):
    """sum(L), sum(L h) and sum(L h^2) behind the statistics, NaN where they are NaN.

    Plain arithmetic, so numpy arrays and xarray DataArrays (dask-backed too) work alike.

    Examples
    --------
    >>> length_sums(np.array([2]), np.array([20.0]), np.array([0.35]), np.array([0.0]))[1]
    array([14.])
    """
    sum_length = count * mean_length
    return sum_length, sum_length * mean_fb, sum_length * (std_fb**2 + mean_fb**2)


def sums_of_statistics(keys, count, mean_length, mean_fb, std_fb) -> CellSums:
    """The sums behind the statistics of occupied cells (the inverse of :func:`statistics`, ``min_segments=1``).

    Exact up to the rounding of the statistics given (float32 ones from a store: about 1e-7 relative).

    Examples
    --------
    >>> s = sums_of_statistics(np.array([7]), *statistics(np.array([2]), np.array([40.0]), np.array([14.0]),
    ...                                                    np.array([5.2])))
    >>> s.count, s.sum_length, s.sum_length_h, np.round(s.sum_length_h2, 9)
    (array([2]), array([40.]), array([14.]), array([5.2]))
    """
    count = np.asarray(count, dtype=np.int64)
    sum_length, sum_length_h, sum_length_h2 = length_sums(
        count, *(np.asarray(s, dtype=np.float64) for s in (mean_length, mean_fb, std_fb))
    )
    keys = np.asarray(keys, dtype=np.int64)
    return CellSums(keys, count, sum_length, sum_length_h, sum_length_h2, int(count.sum()))


def statistics(count, sum_length, sum_length_h, sum_length_h2, min_segments: int = 1):
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
        mean_fb = np.where(valid, sum_length_h / sum_length, np.nan)
        var = np.where(count == 1, 0.0, sum_length_h2 / sum_length - mean_fb**2)
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
    stats = statistics(sums.count[ok], sums.sum_length[ok], sums.sum_length_h[ok], sums.sum_length_h2[ok], min_segments)
    where = (t[ok], r[ok], c[ok])
    for target, values in zip(out, stats, strict=True):
        target[where] = values
    return out


def dense_codes(columns: Mapping[str, np.ndarray], request: GridRequest) -> np.ndarray:
    """Each segment's flat index into the fixed ``(time, y, x)`` output of ``request``, -1 if it does not count.

    For a request with :attr:`~is2grid.grid.request.GridRequest.fixed_extent`: the group codes of a dask
    map-reduce whose output shape is known before any data is read.
    """
    window, ordinals = request.window, request.ordinals
    assert window is not None and ordinals is not None, "dense_codes needs a request with a fixed extent"
    keep, lat, lon, _, _, times = _kept(columns, request)
    codes = np.full(keep.size, -1, dtype=np.int64)
    if not keep.any():
        return codes
    row, col, inside = window.cell_index(*to_xy(lon, lat, window.crs))
    ordinal = request.bins.ordinals(times)
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
