"""Gridding as xarray in, xarray out: segments to a labelled CF grid of ATL20 statistics.

The data path: :class:`~is2grid.grid.request.GridRequest` (what to grid) ->
:mod:`is2grid.grid.reduction` (segments -> per-cell sums -> statistics, numpy) -> :func:`gridded_dataset`
(CF labels). Dask input stays lazy when the output's extent is fixed (a window and a time range):
flox's map-reduce then sums chunk by chunk. Otherwise the extent depends on the data and
:func:`grid_segments` says how to fix it instead of computing behind the user's back.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from is2grid.errors import GridError
from is2grid.grid import reduction
from is2grid.grid.grids import Grid, to_lonlat
from is2grid.grid.reduction import CellSums
from is2grid.grid.request import GridRequest
from is2grid.products import icesat2, of_dataset
from is2grid.products.base import ROLES

__all__ = [
    "check_size",
    "collapse_time",
    "grid_segments",
    "gridded_dataset",
    "sel_lonlat",
    "statistic_names",
    "with_latlon",
]

TIME_UNITS = "seconds since 2018-01-01T00:00:00"


def grid_segments(
    ds: xr.Dataset, request: GridRequest | None = None, *, memory_budget: float | str | None = "auto", **options: Any
) -> xr.Dataset:
    """Bin segments onto a polar grid as the ATL20 statistics (drop in the bucket) of one variable.

    Parameters
    ----------
    ds : xarray.Dataset
        Segments as opened with ``engine="atl10"`` or ``engine="atl07"`` (or anything with the same
        variables; without a ``product`` attribute they are taken as ATL10).
    request : GridRequest, optional
        A ready request; otherwise one is built from ``options``.
    memory_budget : float, "auto" or None
        Bytes the dense result may take (``"auto"``: half of what the process can still get, see
        :func:`is2grid.memory.memory_limits`; None: no limit). A larger result raises
        :class:`is2grid.MemoryBudgetError` with its size and the fixes, before any work when the extent
        is fixed (``time_range`` and a window). A lazy result (dask segments) is not checked.
    **options
        The keyword arguments of :meth:`is2grid.grid.request.GridRequest.create` (``grid``, ``res``,
        ``freq``, ``bbox``, ``time_range``, ``variable``, filters...). ``hemisphere`` defaults to the
        data's, ``product`` to the Dataset's ``product`` attribute.

    Warns
    -----
    is2grid.Is2gridWarning
        When nothing is gridded (every segment filtered out, or outside the window or the period).

    Returns
    -------
    xarray.Dataset
        CF-1.8: ``x``/``y`` cell centres (m, y descending), a ``crs`` grid-mapping variable with
        ``crs_wkt``, and ``n_segments``, ``mean_seg_length``, ``mean_fb``, ``std_fb`` on
        ``(time, y, x)`` (``mean_<stem>``, ``std_<stem>`` for another ``variable``; the ``product`` and
        ``gridded_variable`` attributes say which), each with ``grid_mapping``, units and
        ``cell_methods``. Empty cells have ``n_segments == 0`` and NaN statistics. Lazy (dask) when
        ``ds`` is and the extent is fixed.

    Raises
    ------
    is2grid.GridError
        For a bad option, a missing variable, or dask input whose output extent is not fixed.

    Examples
    --------
    >>> import tempfile
    >>> from is2grid import tutorial
    >>> ds = xr.open_dataset(tutorial.write_granule(tempfile.mkdtemp(), n_segments=2000), engine="atl10")
    >>> gridded = grid_segments(ds, grid="ease2", res=25000, freq="1D")
    >>> gridded.mean_fb.dims, int(gridded.n_segments.sum()) == gridded.attrs["segments_gridded"]
    (('time', 'y', 'x'), True)
    """
    from is2grid import memory

    max_bytes = memory.budget(memory_budget)
    if request is None:
        grid = options.get("grid", "ease2")
        if options.get("hemisphere") is None and not isinstance(grid, Grid):
            options["hemisphere"] = icesat2.hemisphere_of_dataset(ds)
        options.setdefault("product", of_dataset(ds))
        request = GridRequest.create(**options)
    elif options:
        raise TypeError(f"grid_segments: give a request or options, not both ({sorted(options)}).")
    columns = _columns(ds, request)
    if request.variable not in request.product.segment_variables:  # derived: described by its own attributes
        request = dataclasses.replace(request, variable_attrs=dict(ds[request.variable].attrs))
    if any(v.chunks is not None for v in columns.values()):
        if not request.fixed_extent:
            raise GridError(
                "the segments are dask arrays but the output's extent depends on them. Give time_range= and one "
                "of bbox=, bbox_xy= or full_grid=True so the result stays lazy, or load the segments first "
                "(ds.load()); for many granules use is2grid.workflow.grid_granules, which reads one at a time."
            )
        return _lazy(columns, request, ds.attrs)
    if max_bytes is not None and request.fixed_extent:  # before any work: the extent is known
        assert request.window is not None and request.ordinals is not None
        check_size((len(request.ordinals), request.window.nrows, request.window.ncols), max_bytes)
    sums = reduction.cell_sums({n: v.values for n, v in columns.items()}, request)
    if ds.sizes.get("segment", 0):  # segments given, none gridded (an empty input says so itself)
        warn_if_empty(sums, request, f"{int(ds.sizes['segment'])} segments")
    return gridded_dataset(sums, request, ds.attrs, max_bytes=max_bytes)


def warn_if_empty(sums: CellSums, request: GridRequest, given: str) -> None:
    """An :class:`~is2grid.Is2gridWarning` when nothing was gridded: which filters and window removed it all."""
    if sums.keys.size:
        return
    import warnings

    from is2grid.errors import Is2gridWarning

    where = []
    if request.window is not None:
        where.append(f"the window {request.window.name}")
    if request.time_range is not None:
        where.append(f"time_range={[str(t) for t in request.time_range]}")
    warnings.warn(
        f"nothing was gridded: none of the {given} passed the filters ({request.describe()})"
        + (f" and fell in {' and '.join(where)}" if where else "")
        + ". The result has no data; check bbox=, time_range=, the filters and the granules' hemisphere.",
        Is2gridWarning,
        stacklevel=4,
    )


def _columns(ds: xr.Dataset, request: GridRequest) -> dict[str, xr.Variable]:
    missing = [n for n in request.needed if n not in ds.variables]
    if missing:
        engine = request.product.name.lower()
        raise GridError(
            f"the Dataset lacks {missing}, needed for gridding. Open it with the default variables, or add them: "
            f"xr.open_dataset(path, engine={engine!r}, variables=[..., {', '.join(repr(m) for m in missing)}])."
        )
    value = ds[request.variable].variable
    if value.dims != ds["latitude"].dims:
        raise GridError(
            f"variable={request.variable!r} lies along {value.dims}, not along the segments {ds['latitude'].dims}: "
            "grid a variable with one value per segment."
        )
    if value.dtype.kind not in "iufb":
        raise GridError(f"variable={request.variable!r} holds {value.dtype} values, not numbers: it has no mean.")
    columns = {n: ds[n].variable for n in request.needed}
    columns["delta_time"] = _utc(ds["delta_time"].variable)
    return columns


def _utc(time: xr.Variable) -> xr.Variable:
    """``delta_time`` as UTC datetimes; opened with ``decode_times=False`` it is CF-decoded here."""
    if time.dtype.kind == "M":
        return time
    if "since" not in str(time.attrs.get("units", "")):
        raise GridError(
            "delta_time is neither datetimes nor CF-encoded seconds (no 'units' attribute such as "
            "'seconds since 2018-01-01'). Open the granule with the default decode_times=True."
        )
    return xr.decode_cf(xr.Dataset({"t": time}))["t"].variable


def _lazy(columns: dict[str, xr.Variable], request: GridRequest, source_attrs: dict) -> xr.Dataset:
    """The statistics as dask arrays: flox's map-reduce over codes into the fixed (time, y, x) output."""
    import dask.array as da
    import flox

    window, ordinals = request.window, request.ordinals
    assert window is not None and ordinals is not None
    names = list(columns)
    chunks = next(c.chunks for c in columns.values() if c.chunks is not None)
    arrays = [da.asarray(columns[n].data).rechunk(chunks) for n in names]
    codes = da.map_blocks(_block_codes, *arrays, names=names, request=request, dtype=np.int64)
    length, fb = arrays[names.index(request.product.length)], arrays[names.index(request.variable)]
    shape = (len(ordinals), window.nrows, window.ncols)
    groups = int(np.prod(shape))
    # reindex=False keeps each chunk's intermediate sparse (its occupied cells only): memory follows
    # the chunk, not the (time x grid) output
    sums = flox.groupby_reduce(
        reduction.weights(length, fb),
        codes,
        func="sum",
        expected_groups=pd.RangeIndex(groups),
        method="map-reduce",
        reindex=False,
        fill_value=0.0,
        engine="numpy",
    )[0]
    stats = da.map_blocks(_block_statistics, sums.rechunk({0: -1}), request.min_segments, dtype=np.float64)
    count = stats[0].round().astype(np.int32).reshape(shape)
    stacked = [count, *(stats[i].reshape(shape) for i in (1, 2, 3))]
    return _labelled(stacked, window, ordinals, request, source_attrs, None)


def _block_codes(*blocks, names, request):
    return reduction.dense_codes(dict(zip(names, blocks, strict=True)), request)


def _block_statistics(sums, min_segments):
    return np.stack(reduction.statistics(*sums, min_segments))


def gridded_dataset(
    sums: CellSums, request: GridRequest, source_attrs: dict | None = None, *, max_bytes: float | None = None
) -> xr.Dataset:
    """The labelled CF result of summed segments.

    The window and the time axis are the request's when fixed, else the smallest that hold the data.

    Parameters
    ----------
    sums : CellSums
        From :func:`is2grid.grid.reduction.cell_sums`, or several combined.
    request : GridRequest
        The request the sums were made for.
    source_attrs : dict, optional
        Attributes of the segments (``hemisphere``, ``granule``, ``granules``, ``beams`` are kept).
    max_bytes : float, optional
        Refuse to build a dense result larger than this (see :func:`check_size`).

    Returns
    -------
    xarray.Dataset

    Raises
    ------
    is2grid.MemoryBudgetError
        When the dense result would exceed ``max_bytes``.
    """
    window = request.window if request.window is not None else _data_window(sums, request.grid)
    ordinals = request.ordinals if request.ordinals is not None else _data_ordinals(sums, request.grid)
    if max_bytes is not None:
        check_size((len(ordinals), window.nrows, window.ncols), max_bytes)
    arrays = reduction.scatter(sums, window, ordinals, request.min_segments)
    return _labelled(arrays, window, ordinals, request, source_attrs or {}, sums)


#: bytes per cell and time bin of an in-memory result: int32 count and three float64 statistics
BYTES_PER_CELL = 4 + 3 * 8


def check_size(shape: tuple[int, int, int], max_bytes: float) -> None:
    """Raise :class:`~is2grid.MemoryBudgetError` if a dense ``(time, y, x)`` result exceeds ``max_bytes``.

    Examples
    --------
    >>> check_size((365, 2880, 2880), 8e9)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    is2grid.errors.MemoryBudgetError: the result would need 84.8 GB in memory (365 time bins x 2880 x 2880 ...
    """
    need = float(np.prod(shape, dtype=np.float64)) * BYTES_PER_CELL
    if need > max_bytes:
        from is2grid.errors import MemoryBudgetError

        raise MemoryBudgetError(
            f"the result would need {need / 1e9:.1f} GB in memory ({shape[0]} time bins x {shape[1]} x {shape[2]} "
            f"cells x {BYTES_PER_CELL} bytes), over the budget of {max_bytes / 1e9:.1f} GB. Write it to a Zarr "
            "store instead (store='out.zarr', or --out out.zarr on the command line), grid a smaller window "
            "(bbox=...), or use longer time bins (freq='MS')."
        )


def _data_window(sums: CellSums, grid: Grid) -> Grid:
    if not sums.keys.size:
        return grid.window(0, -1, 0, -1)
    _, row, col = grid.split_keys(sums.keys)
    return grid.window(row.min(), row.max(), col.min(), col.max())


def _data_ordinals(sums: CellSums, grid: Grid) -> np.ndarray:
    if not sums.keys.size:
        return np.zeros(0, dtype=np.int64)
    ordinal, _, _ = grid.split_keys(sums.keys)
    return np.arange(ordinal.min(), ordinal.max() + 1, dtype=np.int64)


def _labelled(arrays, window: Grid, ordinals, request: GridRequest, source_attrs: dict, sums: CellSums | None):
    from is2grid._version import __version__

    bins = request.bins
    has_time = bins.freq is not None
    dims = ("time", "y", "x") if has_time else ("y", "x")
    stats = request.statistics
    data_vars = {
        stats[role][0]: (
            dims,
            values if has_time else values[0],
            {**(stats[role][1] if has_time else _without_time(stats[role][1])), "grid_mapping": "crs"},
        )
        for role, values in zip(ROLES, arrays, strict=True)
    }
    coords = {
        "x": (
            "x",
            window.x,
            {"standard_name": "projection_x_coordinate", "long_name": "x of cell centre", "units": "m", "axis": "X"},
        ),
        "y": (
            "y",
            window.y,
            {"standard_name": "projection_y_coordinate", "long_name": "y of cell centre", "units": "m", "axis": "Y"},
        ),
        "crs": ((), np.int32(0), window.cf_grid_mapping()),
    }
    if has_time:
        coords["time"] = (
            "time",
            bins.starts(ordinals),
            {
                "standard_name": "time",
                "long_name": f"start of the {bins.freq} time bin (UTC)",
                "axis": "T",
                "bounds": "time_bounds",
            },
        )
        # CF cell boundaries: each bin from its start to the next bin's start
        bounds = np.stack([bins.starts(ordinals), bins.starts(ordinals + 1)], axis=1)
        coords["time_bounds"] = (("time", "nv"), bounds, {})  # CF 7.1: bounds take their attributes from time
    out = xr.Dataset(data_vars, coords=coords).set_coords("crs")
    if has_time:
        for name in ("time", "time_bounds"):
            out[name].encoding.update(units=TIME_UNITS, calendar="standard", dtype="float64")
    product = request.product
    what = stats["mean"][1]["long_name"].removeprefix("length-weighted mean ")
    attrs = {
        "Conventions": "CF-1.8",
        "title": f"{what[:1].upper() + what[1:]} on {window.name} (ATL20-style statistics from {product.name})",
        "source": f"ICESat-2 {product.name} segments gridded by is2grid " + __version__,
        "product": product.name,
        "gridded_variable": request.variable,
        "grid": window.name,
        "grid_crs": window.crs,
        "grid_resolution_m": window.res,
        "time_binning": bins.freq or "none (one grid over the whole input)",
        "statistics": "ATL20 drop-in-the-bucket: N, sum(L)/N, sum(L h)/sum(L), sqrt(sum(L h^2)/sum(L) - mean^2)",
        "filters": request.filters.describe(),
        "min_segments": np.int32(request.min_segments),
    }
    for key in ("hemisphere", "granule", "granules", "beams"):
        if key in source_attrs:
            attrs[f"source_{key}" if key != "hemisphere" else key] = source_attrs[key]
    if sums is not None:
        attrs["segments_gridded"] = int(sums.n_segments)
        if sums.t_min is not None:
            attrs["time_coverage_start"] = str(np.datetime64(sums.t_min, "ns"))
            attrs["time_coverage_end"] = str(np.datetime64(sums.t_max, "ns"))
    out.attrs.update(attrs)
    return out


def _without_time(attrs: dict) -> dict:
    """A statistic's attributes for a grid without a time axis: its cell_methods name no ``time`` (CF 7.3)."""
    methods = str(attrs.get("cell_methods", ""))
    if " area: " not in methods:
        return attrs
    return {**attrs, "cell_methods": "area: " + methods.split(" area: ", 1)[1]}


def collapse_time(gridded: xr.Dataset) -> xr.Dataset:
    """Combine all time bins of a result into one 2-D grid, exactly (sums are recovered from the statistics).

    Equal to gridding with ``freq=None`` up to float64 rounding, provided ``min_segments`` was 1.

    Examples
    --------
    >>> import tempfile
    >>> from is2grid import tutorial
    >>> ds = xr.open_dataset(tutorial.write_granule(tempfile.mkdtemp(), n_segments=2000), engine="atl10")
    >>> daily = ds.is2grid.to_ease2(res=25000, freq="1D")
    >>> collapse_time(daily).mean_fb.dims
    ('y', 'x')
    """
    if "time" not in gridded.dims:
        return gridded
    names = statistic_names(gridded)
    n = gridded[names["count"]]
    sum_length, sum_length_h, sum_length_h2 = (
        s.fillna(0.0)
        for s in reduction.length_sums(n, *(gridded[names[role]] for role in ("mean_length", "mean", "std")))
    )
    count = n.sum("time").values.astype(np.int32)
    stats = reduction.statistics(count, *(s.sum("time").values for s in (sum_length, sum_length_h, sum_length_h2)))
    out = gridded.isel(time=0, drop=True).drop_vars("time_bounds", errors="ignore")
    for role, values in zip(ROLES, stats, strict=True):
        out[names[role]] = (("y", "x"), values, gridded[names[role]].attrs)
    if "time_bounds" in gridded.coords and gridded.sizes["time"]:
        span = [gridded.time_bounds.values[0, 0], gridded.time_bounds.values[-1, 1]]
        out = out.assign_coords(time_bounds=("nv", span, {}))
    out.attrs["time_binning"] = f"{gridded.attrs.get('time_binning')} bins combined"
    return out


def statistic_names(gridded: xr.Dataset) -> dict[str, str]:
    """Role (``count``, ``mean_length``, ``mean``, ``std``) -> variable name in a gridded result.

    Read from the ``product`` and ``gridded_variable`` attributes the gridder writes.

    Examples
    --------
    >>> statistic_names(xr.Dataset(attrs={"product": "ATL07", "gridded_variable": "height_segment_height"}))
    {'count': 'n_segments', 'mean_length': 'mean_seg_length', 'mean': 'mean_height', 'std': 'std_height'}
    """
    product = of_dataset(gridded)
    stats = product.statistics(gridded.attrs.get("gridded_variable", product.variable))
    return {role: name for role, (name, _) in stats.items()}


def min_segments_of(gridded: xr.Dataset) -> int:
    """The ``min_segments`` a result was gridded with (1 for results that do not say)."""
    return int(gridded.attrs.get("min_segments", 1))


def with_latlon(gridded: xr.Dataset) -> xr.Dataset:
    """Add 2-D ``lat``/``lon`` coordinates of the cell centres to a gridded Dataset.

    Examples
    --------
    >>> import tempfile
    >>> from is2grid import tutorial
    >>> ds = xr.open_dataset(tutorial.write_granule(tempfile.mkdtemp(), n_segments=2000), engine="atl10")
    >>> with_latlon(ds.is2grid.to_ease2(res=25000)).lat.dims
    ('y', 'x')
    """
    from pyproj import CRS

    if "crs" not in gridded.variables or "x" not in gridded.coords or "y" not in gridded.coords:
        raise GridError("latlon() needs a gridded Dataset with x, y and a 'crs' grid-mapping variable (from to_ease2).")
    xx, yy = np.meshgrid(gridded.x.values, gridded.y.values)
    lon, lat = to_lonlat(xx, yy, CRS.from_cf(gridded["crs"].attrs))
    return gridded.assign_coords(
        lat=(
            ("y", "x"),
            lat,
            {"standard_name": "latitude", "units": "degrees_north", "long_name": "latitude of cell centre"},
        ),
        lon=(
            ("y", "x"),
            lon,
            {"standard_name": "longitude", "units": "degrees_east", "long_name": "longitude of cell centre"},
        ),
    )


def sel_lonlat(gridded: xr.Dataset, lon, lat) -> xr.Dataset:
    """The cells that hold the given points (vectorised): the cell a point falls in, not a nearest centre.

    Parameters
    ----------
    gridded : xarray.Dataset
        A gridded result (``x``, ``y`` and a ``crs`` grid mapping).
    lon, lat : float or array-like
        Points in degrees. Arrays give a ``points`` dimension carrying ``lon``/``lat`` coordinates.

    Returns
    -------
    xarray.Dataset

    Raises
    ------
    is2grid.GridError
        Naming the points that fall outside the grid's window.

    Examples
    --------
    >>> import tempfile
    >>> from is2grid import tutorial
    >>> ds = xr.open_dataset(tutorial.write_granule(tempfile.mkdtemp(), n_segments=2000), engine="atl10")
    >>> gridded = ds.is2grid.to_ease2(res=25000, freq=None)
    >>> point = gridded.is2grid.sel_lonlat([float(ds.longitude[0])], [float(ds.latitude[0])])
    >>> point.n_segments.dims, int(point.n_segments[0]) > 0
    (('points',), True)
    """
    from pyproj import CRS

    from is2grid.grid.grids import to_xy

    if "crs" not in gridded.variables or gridded.sizes.get("x", 0) == 0 or gridded.sizes.get("y", 0) == 0:
        raise GridError("sel_lonlat() needs a non-empty gridded Dataset with x, y and a 'crs' grid mapping.")
    scalar = np.ndim(lon) == 0 and np.ndim(lat) == 0
    lon_a, lat_a = np.broadcast_arrays(
        np.atleast_1d(np.asarray(lon, dtype=np.float64)), np.atleast_1d(np.asarray(lat, dtype=np.float64))
    )
    x, y = to_xy(lon_a.ravel(), lat_a.ravel(), CRS.from_cf(gridded["crs"].attrs).to_string())
    xs, ys = gridded.x.values, gridded.y.values
    res = float(gridded.attrs.get("grid_resolution_m", abs(xs[1] - xs[0]) if xs.size > 1 else abs(ys[1] - ys[0])))
    col = np.floor((x - (xs[0] - res / 2)) / res).astype(np.int64)
    row = np.floor(((ys[0] + res / 2) - y) / res).astype(np.int64)
    outside = ~((col >= 0) & (col < xs.size) & (row >= 0) & (row < ys.size) & np.isfinite(x) & np.isfinite(y))
    if outside.any():
        bad = [f"({a:g}, {b:g})" for a, b in zip(lon_a.ravel()[outside][:5], lat_a.ravel()[outside][:5], strict=True)]
        raise GridError(
            f"{int(outside.sum())} point(s) fall outside this grid's window: {', '.join(bad)} (lon, lat). "
            "Grid a larger window (bbox=..., full_grid=True) or check the order: sel_lonlat(lon, lat)."
        )
    if scalar:
        return gridded.isel(x=int(col[0]), y=int(row[0]))
    points = {"points": np.arange(col.size)}
    out = gridded.isel(
        x=xr.DataArray(col, dims="points", coords=points), y=xr.DataArray(row, dims="points", coords=points)
    )
    return out.assign_coords(
        lon=("points", lon_a.ravel(), {"standard_name": "longitude", "units": "degrees_east"}),
        lat=("points", lat_a.ravel(), {"standard_name": "latitude", "units": "degrees_north"}),
    )
