"""Drop-in-the-bucket gridding of freeboard segments into ATL20 statistics, with flox.

For every (time bin, grid cell) that holds segments, with L the segment length
(``height_segment_length_seg``) and h the freeboard (``beam_fb_height``), accumulated in float64
(ATL20 ATBD, as summarised in NSIDC's ATL20 material):

- ``n_segments``      N
- ``mean_seg_length`` sum(L) / N
- ``mean_fb``         sum(L h) / sum(L)                                  (length-weighted mean)
- ``std_fb``          sqrt(max(sum(L h^2) / sum(L) - mean_fb^2, 0))      (length-weighted std, not the variance)

How: project (pyproj) -> global integer row/col (row and column bounds checked separately) ->
time-bin ordinal -> one int64 key per segment -> ``pd.factorize`` to the occupied keys only ->
flox ``groupby_reduce`` sums over those codes. Partial results are small sorted (key, sums) tables,
so a dask input is reduced chunk by chunk in a tree and memory is bounded by the chunk size and
the output, never by the number of segments or by a dense (time x grid) group table.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from is2grid.errors import GridError
from is2grid.gpstime import delta_time_to_utc
from is2grid.grids import Grid

__all__ = ["Filters", "TimeBins", "collapse_time", "combine", "grid_from_total", "grid_segments", "partial_sums"]

NEEDED = ("latitude", "longitude", "delta_time", "beam_fb_height", "height_segment_length_seg")
FILL_THRESHOLD = 1e38  # un-masked float32 fill (3.4028235e38) when opened with mask_and_scale=False
_ANCHORS = ("1970-01-01", "2101-01-01")


@dataclass(frozen=True)
class Filters:
    """Which segments count. The defaults follow ATL20: finite, non-fill freeboard, length > 0, finite position."""

    segment_types: tuple[int, ...] | None = None
    max_quality: int | None = None
    fb_range: tuple[float, float] | None = None
    lonlat_box: tuple[float, float, float, float] | None = None
    hemisphere: str | None = None

    @classmethod
    def from_options(
        cls, *, segment_types=None, max_quality=None, fb_range=None, bbox=None, hemisphere=None
    ) -> Filters:
        """Filters from the user-facing keyword arguments (sequences normalised to tuples of numbers)."""
        if bbox is not None and hemisphere in ("north", "south") and len(bbox) == 4:
            lat_min, lat_max = float(bbox[1]), float(bbox[3])
            if (hemisphere == "south" and lat_min >= 0) or (hemisphere == "north" and lat_max <= 0):
                raise GridError(
                    f"bbox={tuple(bbox)!r} lies in the other hemisphere than the {hemisphere}ern granules. "
                    "bbox is (lon_min, lat_min, lon_max, lat_max): check the order."
                )
        return cls(
            segment_types=None if segment_types is None else tuple(int(s) for s in segment_types),
            max_quality=max_quality,
            fb_range=None if fb_range is None else (float(fb_range[0]), float(fb_range[1])),
            lonlat_box=None if bbox is None else (float(bbox[0]), float(bbox[1]), float(bbox[2]), float(bbox[3])),
            hemisphere=hemisphere,
        )

    def needs(self) -> tuple[str, ...]:
        extra = []
        if self.segment_types is not None:
            extra.append("height_segment_type")
        if self.max_quality is not None:
            extra.append("beam_fb_quality_flag")
        return tuple(extra)

    def mask(self, lat, lon, length, fb, seg_type=None, quality=None) -> np.ndarray:
        with np.errstate(invalid="ignore"):
            keep = (
                np.isfinite(fb) & (fb < FILL_THRESHOLD) & np.isfinite(length) & (length > 0) & (length < FILL_THRESHOLD)
            )
            keep &= np.isfinite(lat) & np.isfinite(lon) & (np.abs(lat) <= 90)
            if self.segment_types is not None:
                keep &= np.isin(seg_type, np.asarray(self.segment_types))
            if self.max_quality is not None:
                keep &= (quality >= 1) & (quality <= self.max_quality)
            if self.fb_range is not None:
                keep &= (fb >= self.fb_range[0]) & (fb <= self.fb_range[1])
            if self.lonlat_box is not None:
                lon_min, lat_min, lon_max, lat_max = self.lonlat_box
                in_lon = (
                    (lon >= lon_min) & (lon <= lon_max) if lon_min <= lon_max else (lon >= lon_min) | (lon <= lon_max)
                )
                keep &= in_lon & (lat >= lat_min) & (lat <= lat_max)
        if self.hemisphere is not None:
            wrong = keep & ((lat < 0) if self.hemisphere == "north" else (lat > 0))
            if wrong.any():
                raise GridError(
                    f"segments from both hemispheres (hemisphere={self.hemisphere!r} but {int(wrong.sum())} segments "
                    "lie in the other one). Grid each hemisphere separately: split the Dataset, e.g. "
                    "ds.where(ds.latitude < 0, drop=True) for the south."
                )
        return keep


@dataclass(frozen=True)
class TimeBins:
    """Time bins of a pandas frequency, anchored independently of the data (so partial results combine).

    Fixed frequencies ("1D", "7D", "6h") count bins from 1970-01-01; calendar ones ("MS", "W-MON",
    "QS") use the calendar's own anchors. ``freq=None`` puts everything in one bin.

    Examples
    --------
    >>> bins = TimeBins("1D")
    >>> t = np.array(["2019-09-15T23:59:59", "2019-09-16T00:00:00"], dtype="datetime64[ns]")
    >>> bins.starts(bins.ordinals(t))
    array(['2019-09-15T00:00:00.000000000', '2019-09-16T00:00:00.000000000'],
          dtype='datetime64[ns]')
    """

    freq: str | None
    _step: int | None = field(default=None, init=False, repr=False, compare=False)
    _anchors: Any = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self):
        if self.freq is None:
            return
        from pandas.tseries.frequencies import to_offset
        from pandas.tseries.offsets import Tick

        try:
            offset = to_offset(self.freq)
        except (ValueError, TypeError) as err:
            raise GridError(
                f"freq={self.freq!r}: not a pandas frequency. "
                "Use e.g. '1D' (daily, like ATL20), '7D', 'MS' (monthly) or None."
            ) from err
        if offset.n <= 0:
            raise GridError(f"freq={self.freq!r}: a time bin must be longer than zero. Use e.g. '1D', '7D' or 'MS'.")
        if isinstance(offset, Tick):
            object.__setattr__(self, "_step", int(pd.Timedelta(offset).value))
        else:
            anchors = pd.date_range(offset.rollback(pd.Timestamp(_ANCHORS[0])), _ANCHORS[1], freq=offset)
            object.__setattr__(self, "_anchors", anchors.values.astype("datetime64[ns]"))

    def ordinals(self, times) -> np.ndarray:
        t = np.asarray(times, dtype="datetime64[ns]")
        if self.freq is None:
            return np.zeros(t.shape, dtype=np.int64)
        ns = t.astype(np.int64)
        if self._step is not None:
            return np.floor_divide(ns, self._step)
        ordinal = np.searchsorted(self._anchors, t, side="right") - 1
        if ordinal.size and (ordinal.min() < 0 or ordinal.max() >= len(self._anchors) - 1):
            raise GridError(
                f"segment times outside {_ANCHORS[0]}..{_ANCHORS[1]} cannot be binned with freq={self.freq!r}."
            )
        return ordinal.astype(np.int64)

    def starts(self, ordinals) -> np.ndarray:
        ordinals = np.asarray(ordinals, dtype=np.int64)
        if self.freq is None:
            return np.full(ordinals.shape, np.datetime64("NaT", "ns"))
        if self._step is not None:
            return (ordinals * self._step).astype("datetime64[ns]")
        return self._anchors[ordinals]


@dataclass
class Partial:
    """Sparse sums over the occupied keys: sorted unique ``keys`` and per-key count and sums of L, L h, L h^2."""

    keys: np.ndarray
    count: np.ndarray
    sum_l: np.ndarray
    sum_lh: np.ndarray
    sum_lh2: np.ndarray
    n_valid: int = 0
    t_min: int | None = None  # first and last gridded segment time, ns since 1970
    t_max: int | None = None

    @classmethod
    def empty(cls) -> Partial:
        z = np.zeros(0)
        return cls(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), z, z, z, 0)


def project(lon, lat, crs: str, threads: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Longitude/latitude (WGS84) to the grid CRS; large inputs split over threads (PROJ releases the GIL)."""
    from pyproj import Transformer

    transformer = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    lon = np.ascontiguousarray(lon, dtype=np.float64)
    lat = np.ascontiguousarray(lat, dtype=np.float64)
    if threads <= 1 or lon.size < 200_000:
        return transformer.transform(lon, lat)
    bounds = np.linspace(0, lon.size, threads + 1).astype(int)
    x, y = np.empty_like(lon), np.empty_like(lat)

    def run(i):
        a, b = bounds[i], bounds[i + 1]
        x[a:b], y[a:b] = Transformer.from_crs("EPSG:4326", crs, always_xy=True).transform(lon[a:b], lat[a:b])

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(run, range(threads)))
    return x, y


def _as_utc(delta_time) -> np.ndarray:
    t = np.asarray(delta_time)
    return t.astype("datetime64[ns]") if np.issubdtype(t.dtype, np.datetime64) else delta_time_to_utc(t)


def partial_sums(
    lat, lon, delta_time, length, fb, seg_type=None, quality=None, *, grid: Grid, bins: TimeBins, filters: Filters
) -> Partial:
    """Sums of one batch of segments over its occupied (time bin, global cell) keys.

    Points outside ``grid`` (which may be a window) are dropped: row and column each checked.
    """
    lat = np.asarray(lat, dtype=np.float64)
    lon = np.asarray(lon, dtype=np.float64)
    length = np.asarray(length, dtype=np.float64)
    fb = np.asarray(fb, dtype=np.float64)
    keep = filters.mask(
        lat,
        lon,
        length,
        fb,
        None if seg_type is None else np.asarray(seg_type),
        quality if quality is None else np.asarray(quality),
    )
    times = _as_utc(delta_time)
    keep &= ~np.isnat(times)
    if not keep.any():
        return Partial.empty()
    x, y = project(lon[keep], lat[keep], grid.crs)
    row, col, inside = grid.cell_index(x, y)
    ordinal = bins.ordinals(times[keep][inside])
    full_rows, full_cols = grid.full_shape
    key = (ordinal * full_rows + row[inside]) * full_cols + col[inside]
    part = _reduce(key, length[keep][inside], fb[keep][inside])
    if key.size:
        ns = times[keep][inside].astype(np.int64)
        part.t_min, part.t_max = int(ns.min()), int(ns.max())
    return part


def _reduce(key: np.ndarray, length: np.ndarray, fb: np.ndarray) -> Partial:
    import flox

    if key.size == 0:
        return Partial.empty()
    codes, uniques = pd.factorize(key, sort=False)
    groups = pd.RangeIndex(len(uniques))
    lh = length * fb

    def total(values, func="sum"):
        result, _ = flox.groupby_reduce(values, codes, func=func, expected_groups=groups, engine="numpy")
        return result

    order = np.argsort(uniques)
    return Partial(
        uniques[order].astype(np.int64),
        total(length, "count").astype(np.int64)[order],
        total(length)[order],
        total(lh)[order],
        total(lh * fb)[order],
        int(key.size),
    )


def combine(*parts: Partial) -> Partial:
    """Merge partial sums (associative and commutative: any split of the input gives the same total)."""
    parts = tuple(p for p in parts if p.keys.size)
    if not parts:
        return Partial.empty()
    if len(parts) == 1:
        return parts[0]
    import flox

    keys = np.concatenate([p.keys for p in parts])
    codes, uniques = pd.factorize(keys, sort=True)
    groups = pd.RangeIndex(len(uniques))

    def total(name):
        values = np.concatenate([getattr(p, name) for p in parts]).astype(np.float64)
        result, _ = flox.groupby_reduce(values, codes, func="sum", expected_groups=groups, engine="numpy")
        return result

    return Partial(
        uniques.astype(np.int64),
        total("count").round().astype(np.int64),
        total("sum_l"),
        total("sum_lh"),
        total("sum_lh2"),
        sum(p.n_valid for p in parts),
        min(p.t_min for p in parts if p.t_min is not None),
        max(p.t_max for p in parts if p.t_max is not None),
    )


def decode_keys(keys: np.ndarray, grid: Grid) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    full_rows, full_cols = grid.full_shape
    ordinal, cell = np.divmod(keys, full_rows * full_cols)
    row, col = np.divmod(cell, full_cols)
    return ordinal, row, col


def dense(total: Partial, grid: Grid, ordinals: np.ndarray, min_segments: int = 1) -> tuple[np.ndarray, ...]:
    """Scatter the statistics of the occupied keys into (time, y, x) arrays (no dense intermediate sums)."""
    shape = (len(ordinals), grid.nrows, grid.ncols)
    out = (np.zeros(shape, dtype=np.int32), *(np.full(shape, np.nan) for _ in range(3)))
    if not (total.keys.size and shape[0] and grid.nrows and grid.ncols):
        return out
    ordinal, row, col = decode_keys(total.keys, grid)
    t = np.searchsorted(ordinals, ordinal)
    ok = (t < len(ordinals)) & (ordinals[np.minimum(t, len(ordinals) - 1)] == ordinal)
    r, c = row - grid.row0, col - grid.col0
    ok &= (r >= 0) & (r < grid.nrows) & (c >= 0) & (c < grid.ncols)
    stats = _statistics(total.count[ok], total.sum_l[ok], total.sum_lh[ok], total.sum_lh2[ok], min_segments)
    where = (t[ok], r[ok], c[ok])
    for target, values in zip(out, stats, strict=True):
        target[where] = values
    return out


def _statistics(count, sum_l, sum_lh, sum_lh2, min_segments: int = 1):
    with np.errstate(invalid="ignore", divide="ignore"):
        valid = count >= max(min_segments, 1)
        mean_len = np.where(valid, sum_l / count, np.nan)
        mean_fb = np.where(valid, sum_lh / sum_l, np.nan)
        var = np.where(count == 1, 0.0, sum_lh2 / sum_l - mean_fb**2)
        std_fb = np.where(valid, np.sqrt(np.clip(var, 0.0, None)), np.nan)
    return count, mean_len, mean_fb, std_fb


def collapse_time(grid: xr.Dataset) -> xr.Dataset:
    """Combine all time bins of a result into one 2-D grid, exactly (sums are recovered from the statistics).

    Equal to gridding with ``freq=None`` up to float64 rounding, provided ``min_segments`` was 1.
    """
    if "time" not in grid.dims:
        return grid
    n = grid.n_segments
    sum_l = (n * grid.mean_seg_length).fillna(0.0)
    sum_lh = (sum_l * grid.mean_fb).fillna(0.0)
    sum_lh2 = (sum_l * (grid.std_fb**2 + grid.mean_fb**2)).fillna(0.0)
    count = n.sum("time").values.astype(np.int32)
    stats = _statistics(count, *(s.sum("time").values for s in (sum_l, sum_lh, sum_lh2)))
    out = grid.isel(time=0, drop=True).copy()
    for name, values in zip(STAT_ATTRS, stats, strict=True):
        out[name] = (("y", "x"), values, grid[name].attrs)
    out.attrs["time_binning"] = f"{grid.attrs.get('time_binning')} bins combined"
    return out


# --- the xarray-facing function ---------------------------------------------------------------


def grid_segments(
    ds: xr.Dataset,
    grid: Grid,
    *,
    freq: str | None = "1D",
    bbox: tuple[float, float, float, float] | None = None,
    bbox_xy: tuple[float, float, float, float] | None = None,
    full_grid: bool = False,
    time_range: tuple[Any, Any] | None = None,
    segment_types: tuple[int, ...] | list[int] | None = None,
    max_quality: int | None = None,
    fb_range: tuple[float, float] | None = None,
    min_segments: int = 1,
    check_hemisphere: str | None = None,
) -> xr.Dataset:
    """Grid ATL10 segments onto ``grid``: see :meth:`is2grid.accessor.Is2gridAccessor.to_grid`."""
    filters = Filters.from_options(
        segment_types=segment_types, max_quality=max_quality, fb_range=fb_range, bbox=bbox, hemisphere=check_hemisphere
    )
    _check_inputs(ds, filters, min_segments, bbox, bbox_xy, full_grid)
    bins = TimeBins(freq)
    window = _fixed_window(grid, bbox, bbox_xy, full_grid)
    ordinals = _fixed_ordinals(bins, time_range)
    names = (*NEEDED, *filters.needs())
    lazy = any(ds[n].chunks is not None for n in names)

    if lazy and window is not None and ordinals is not None:
        arrays = _lazy_dense(
            ds, names, grid=window, bins=bins, filters=filters, ordinals=ordinals, min_segments=min_segments
        )
        return _to_dataset(arrays, window, bins, ordinals, ds.attrs, filters, min_segments, None)
    total = _total(ds, names, grid=window or grid.full(), bins=bins, filters=filters)
    return grid_from_total(
        total,
        grid,
        bins,
        window=window,
        ordinals=ordinals,
        filters=filters,
        min_segments=min_segments,
        source_attrs=ds.attrs,
    )


def grid_from_total(
    total: Partial,
    grid: Grid,
    bins: TimeBins,
    *,
    window: Grid | None = None,
    ordinals: np.ndarray | None = None,
    filters: Filters | None = None,
    min_segments: int = 1,
    source_attrs: dict | None = None,
) -> xr.Dataset:
    """The labelled result of summed partials; window and time axis from the data unless given."""
    window = window if window is not None else _data_window(total, grid)
    ordinals = ordinals if ordinals is not None else _data_ordinals(total, grid)
    arrays = dense(total, window, ordinals, min_segments)
    return _to_dataset(arrays, window, bins, ordinals, source_attrs or {}, filters or Filters(), min_segments, total)


def _check_inputs(ds, filters: Filters, min_segments, bbox, bbox_xy, full_grid) -> None:
    missing = [n for n in (*NEEDED, *filters.needs()) if n not in ds.variables]
    if missing:
        raise GridError(
            f"the Dataset lacks {missing}, needed for gridding. Open it with the default variables, or add them: "
            f"xr.open_dataset(path, engine='atl10', variables=[..., {', '.join(repr(m) for m in missing)}])."
        )
    if sum(x is not None and x is not False for x in (bbox, bbox_xy, full_grid)) > 1:
        raise GridError("give at most one of bbox=, bbox_xy= and full_grid=True.")
    if not isinstance(min_segments, int | np.integer) or min_segments < 1:
        raise GridError(f"min_segments={min_segments!r}: must be a whole number >= 1.")
    if filters.fb_range is not None and filters.fb_range[0] > filters.fb_range[1]:
        raise GridError(f"fb_range={filters.fb_range!r}: lower bound above upper bound.")
    if bbox is not None:
        lon_min, lat_min, lon_max, lat_max = bbox
        if not (-180 <= lon_min <= 180 and -180 <= lon_max <= 180 and -90 <= lat_min < lat_max <= 90):
            raise GridError(
                f"bbox={bbox!r}: expected (lon_min, lat_min, lon_max, lat_max) in degrees, lon in [-180, 180], "
                "lat_min < lat_max; lon_min > lon_max means the box crosses the antimeridian."
            )


def _fixed_window(grid: Grid, bbox, bbox_xy, full_grid) -> Grid | None:
    if full_grid:
        return grid.full()
    if bbox_xy is not None:
        return grid.window_for_xy(*bbox_xy)
    if bbox is not None:
        lon_min, lat_min, lon_max, lat_max = bbox
        span = (lon_max - lon_min) % 360 or 360.0
        lons = lon_min + np.linspace(0.0, span, 721)
        lats = np.linspace(lat_min, lat_max, 181)
        edge_lon = np.concatenate([lons, lons, np.full(181, lon_min), np.full(181, lon_min + span)])
        edge_lat = np.concatenate([np.full(721, lat_min), np.full(721, lat_max), lats, lats])
        lon_grid, lat_grid = np.meshgrid(lons[::24], lats[::12])
        x, y = project(
            np.concatenate([edge_lon, lon_grid.ravel()]),
            np.concatenate([edge_lat, lat_grid.ravel()]),
            grid.crs,
            threads=1,
        )
        ok = np.isfinite(x) & np.isfinite(y)
        return grid.window_for_xy(x[ok].min(), y[ok].min(), x[ok].max(), y[ok].max())
    return None


def _fixed_ordinals(bins: TimeBins, time_range) -> np.ndarray | None:
    if bins.freq is None:
        return np.zeros(1, dtype=np.int64)
    if time_range is None:
        return None
    start, end = (np.datetime64(pd.Timestamp(t).to_datetime64(), "ns") for t in time_range)
    first, last = bins.ordinals(np.array([start, end]))
    return np.arange(first, last + 1, dtype=np.int64)


def _call_partial(cols: dict[str, np.ndarray], grid, bins, filters) -> Partial:
    return partial_sums(
        cols["latitude"],
        cols["longitude"],
        cols["delta_time"],
        cols["height_segment_length_seg"],
        cols["beam_fb_height"],
        cols.get("height_segment_type"),
        cols.get("beam_fb_quality_flag"),
        grid=grid,
        bins=bins,
        filters=filters,
    )


def _total(ds, names, *, grid, bins, filters) -> Partial:
    """Sum everything now: in one go for numpy data, chunk by chunk in a dask tree for dask data."""
    if not any(ds[n].chunks is not None for n in names):
        cols = {n: np.asarray(ds[n].values) for n in names}
        return _call_partial(cols, grid, bins, filters)
    import dask

    return dask.compute(_tree(ds, names, grid, bins, filters))[0]


def _tree(ds, names, grid, bins, filters, fan_in: int = 8):
    import dask

    variables = [ds[n].variable for n in names]
    chunks = next(v.chunks[0] for v in variables if v.chunks is not None)
    blocks = {n: v.chunk({"segment": chunks}).data.to_delayed().ravel() for n, v in zip(names, variables, strict=True)}
    task = dask.delayed(_partial_from_blocks, pure=True)
    parts = [task(names, [blocks[n][i] for n in names], grid, bins, filters) for i in range(len(blocks[names[0]]))]
    merge = dask.delayed(combine, pure=True)
    while len(parts) > 1:
        parts = [merge(*parts[i : i + fan_in]) for i in range(0, len(parts), fan_in)]
    return parts[0] if parts else dask.delayed(Partial.empty)()


def _partial_from_blocks(names, blocks, grid, bins, filters) -> Partial:
    return _call_partial(dict(zip(names, blocks, strict=True)), grid, bins, filters)


def _lazy_dense(ds, names, *, grid, bins, filters, ordinals, min_segments):
    import dask
    import dask.array as da

    total = _tree(ds, names, grid, bins, filters)
    out = dask.delayed(dense, nout=4, pure=True)(total, grid, ordinals, min_segments)
    shape = (len(ordinals), grid.nrows, grid.ncols)
    dtypes = (np.int32, np.float64, np.float64, np.float64)
    return tuple(da.from_delayed(o, shape=shape, dtype=d) for o, d in zip(out, dtypes, strict=True))


def _data_window(total: Partial, grid: Grid) -> Grid:
    if not total.keys.size:
        return grid.full().window(0, -1, 0, -1)
    _, row, col = decode_keys(total.keys, grid)
    return grid.full().window(row.min(), row.max(), col.min(), col.max())


def _data_ordinals(total: Partial, grid: Grid) -> np.ndarray:
    if not total.keys.size:
        return np.zeros(0, dtype=np.int64)
    ordinal, _, _ = decode_keys(total.keys, grid)
    return np.arange(ordinal.min(), ordinal.max() + 1, dtype=np.int64)


STAT_ATTRS = {
    "n_segments": {
        "long_name": "number of freeboard segments in the cell",
        "units": "1",
        "cell_methods": "time: sum area: sum",
    },
    "mean_seg_length": {
        "long_name": "mean segment length",
        "units": "m",
        "cell_methods": "time: mean area: mean",
    },
    "mean_fb": {
        "long_name": "length-weighted mean sea ice freeboard",
        "standard_name": "sea_ice_freeboard",
        "units": "m",
        "cell_methods": "time: mean area: mean (weighted by segment length)",
    },
    "std_fb": {
        "long_name": "length-weighted standard deviation of sea ice freeboard",
        "units": "m",
        "cell_methods": "time: standard_deviation area: standard_deviation (weighted by segment length)",
    },
}


def _to_dataset(
    arrays, grid: Grid, bins: TimeBins, ordinals, source_attrs: dict, filters: Filters, min_segments, total
):
    from is2grid import __version__

    has_time = bins.freq is not None
    dims = ("time", "y", "x") if has_time else ("y", "x")
    data_vars = {}
    for name, values in zip(STAT_ATTRS, arrays, strict=True):
        values = values if has_time else values[0]
        data_vars[name] = (dims, values, {**STAT_ATTRS[name], "grid_mapping": "crs"})
    coords = {
        "x": (
            "x",
            grid.x,
            {"standard_name": "projection_x_coordinate", "long_name": "x of cell centre", "units": "m", "axis": "X"},
        ),
        "y": (
            "y",
            grid.y,
            {"standard_name": "projection_y_coordinate", "long_name": "y of cell centre", "units": "m", "axis": "Y"},
        ),
        "crs": ((), np.int32(0), grid.cf_grid_mapping()),
    }
    if has_time:
        coords["time"] = (
            "time",
            bins.starts(ordinals),
            {"standard_name": "time", "long_name": f"start of the {bins.freq} time bin (UTC)", "axis": "T"},
        )
    out = xr.Dataset(data_vars, coords=coords)
    out = out.set_coords("crs")
    if has_time:
        out["time"].encoding.update(units="seconds since 2018-01-01T00:00:00", calendar="standard", dtype="float64")
    attrs = {
        "Conventions": "CF-1.8",
        "title": f"Sea ice freeboard on {grid.name} (ATL20-style statistics from ICESat-2 ATL10)",
        "source": "ICESat-2 ATL10 segments gridded by is2grid " + __version__,
        "grid": grid.name,
        "grid_crs": grid.crs,
        "grid_resolution_m": grid.res,
        "time_binning": bins.freq or "none (one grid over the whole input)",
        "statistics": "ATL20 drop-in-the-bucket: N, sum(L)/N, sum(L h)/sum(L), sqrt(sum(L h^2)/sum(L) - mean^2)",
        "filters": _describe(filters, min_segments),
    }
    for key in ("hemisphere", "granule", "granules", "beams"):
        if key in source_attrs:
            attrs[f"source_{key}" if key != "hemisphere" else key] = source_attrs[key]
    if total is not None:
        attrs["segments_gridded"] = int(total.n_valid)
        if total.t_min is not None:
            attrs["time_coverage_start"] = str(np.datetime64(total.t_min, "ns"))
            attrs["time_coverage_end"] = str(np.datetime64(total.t_max, "ns"))
    out.attrs.update(attrs)
    return out


def _describe(filters: Filters, min_segments: int) -> str:
    parts = ["finite non-fill beam_fb_height", "height_segment_length_seg > 0", "finite latitude/longitude"]
    if filters.segment_types is not None:
        parts.append(f"height_segment_type in {list(filters.segment_types)}")
    if filters.max_quality is not None:
        parts.append(f"1 <= beam_fb_quality_flag <= {filters.max_quality}")
    if filters.fb_range is not None:
        parts.append(f"{filters.fb_range[0]} <= beam_fb_height <= {filters.fb_range[1]} m")
    if filters.lonlat_box is not None:
        parts.append(f"inside lon/lat box {list(filters.lonlat_box)}")
    if min_segments > 1:
        parts.append(f"statistics need >= {min_segments} segments per cell")
    return "; ".join(parts)
