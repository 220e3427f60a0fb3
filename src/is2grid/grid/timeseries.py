"""Region time series: per time bin, the segments, the length-weighted mean of the gridded variable and its spread.

Computed exactly from the cell sums that the statistics stand for (N, sum L, sum L h, sum L h^2),
so a region's mean is the length-weighted mean of all its segments, not a mean of cell means.
A cell belongs to a region when its centre does.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from is2grid.errors import GridError
from is2grid.grid import reduction
from is2grid.grid.regions import region as as_region

__all__ = ["N_CELLS_ATTRS", "region_timeseries", "segments_timeseries"]

#: the attributes of ``n_cells``; the others follow the gridded statistics' (see :func:`_series_attrs`)
N_CELLS_ATTRS = {"long_name": "grid cells with segments in the region", "units": "1"}


def _series_attrs(stats: dict[str, tuple[str, dict[str, str]]]) -> dict[str, tuple[str, dict[str, str]]]:
    """The statistics' names and attributes, said of a region instead of a cell (no cell_methods)."""
    out = {}
    for role, (name, attrs) in stats.items():
        kept = {k: v for k, v in attrs.items() if k in ("long_name", "standard_name", "units", "source", "method")}
        kept["long_name"] = kept["long_name"].removesuffix(" in the cell") + " in the region"
        out[role] = (name, kept)
    return out


def region_timeseries(gridded: xr.Dataset, region: Any) -> xr.Dataset:
    """The time series of a region from a gridded result (``to_ease2``, ``to_grid``, a store, a file).

    Parameters
    ----------
    gridded : xarray.Dataset
        With ``n_segments``, ``mean_seg_length``, ``mean_fb``, ``std_fb`` (or the ``mean_<stem>``,
        ``std_<stem>`` of another gridded variable) on ``(time, y, x)`` and a ``crs`` grid mapping.
        Dask-backed input (a Zarr store) is reduced chunk by chunk.
    region : str, tuple, shapely geometry or GeoJSON
        See :func:`is2grid.grid.regions.region`.

    Returns
    -------
    xarray.Dataset
        On ``time``: ``n_segments``, ``mean_fb``, ``std_fb`` (as gridded), ``mean_seg_length`` and ``n_cells``;
        bins without segments are NaN (gaps, not zeros).

    Raises
    ------
    is2grid.GridError
        If the result was made with ``min_segments > 1`` (its sparse cells no longer carry their sums)
        or the region misses the grid.

    Examples
    --------
    >>> import tempfile
    >>> from is2grid import tutorial
    >>> ds = xr.open_dataset(tutorial.write_granule(tempfile.mkdtemp(), n_segments=2000), engine="atl10")
    >>> series = region_timeseries(ds.is2grid.to_ease2(res=25000), "southern_ocean")
    >>> int(series.n_segments.sum()) == int(ds.beam_fb_height.count())
    True
    """
    from is2grid.grid.gridding import min_segments_of, statistic_names, with_latlon

    area = as_region(region)
    area.check_hemisphere(gridded.attrs.get("hemisphere"))
    if min_segments_of(gridded) > 1:
        raise GridError(
            f"this result was gridded with min_segments={min_segments_of(gridded)}: its sparse cells have NaN "
            "statistics and their sums are lost, so a region total would be wrong. Grid with min_segments=1 for "
            "time series."
        )
    names = statistic_names(gridded)
    count = names["count"]
    located = with_latlon(gridded[[count]].isel(time=0) if "time" in gridded.dims else gridded[[count]])
    inside = xr.DataArray(area.contains(located.lon.values, located.lat.values), dims=("y", "x"))
    if not inside.any():
        raise GridError(f"region {area.name!r} ({area.title}) holds no cell of this grid's window.")
    n = gridded[count].where(inside, 0)
    sum_length, sum_length_h, sum_length_h2 = (
        s.fillna(0.0)
        for s in reduction.length_sums(n, *(gridded[names[role]] for role in ("mean_length", "mean", "std")))
    )
    totals = xr.Dataset(
        {
            "n_segments": n.sum(("y", "x")),
            "sum_length": sum_length.sum(("y", "x")),
            "sum_length_h": sum_length_h.sum(("y", "x")),
            "sum_length_h2": sum_length_h2.sum(("y", "x")),
            "n_cells": (n > 0).sum(("y", "x")),
        }
    ).compute()
    stats = {role: (name, dict(gridded[name].attrs)) for role, name in names.items()}  # as the grid describes them
    return _series(totals, gridded, area, stats)


def _bin_coords(gridded: xr.Dataset) -> dict[str, xr.Variable]:
    """``time`` (bin starts) alone: ``to_dataframe()`` gives one row per bin and ``.hvplot()`` a line.

    The grid's ``time_bounds(time, nv)`` would double every row of a frame (and of a sum over it), and
    hvplot draws a DataArray with a second coordinate along ``time`` as an image. A bin ends where the
    next starts: ``time + pandas.tseries.frequencies.to_offset(series.attrs["time_binning"])``.
    """
    if "time" not in gridded.coords:
        return {}
    time = gridded["time"].variable.copy()
    time.attrs = {k: v for k, v in time.attrs.items() if k != "bounds"}
    return {"time": time}


def _series(totals: xr.Dataset, gridded: xr.Dataset, area, stats) -> xr.Dataset:
    if totals.n_segments.size and not totals.n_segments.values.any():
        import warnings

        from is2grid.errors import Is2gridWarning

        warnings.warn(
            f"region {area.name!r} ({area.title}, bbox {area.bbox}) holds no segment in any time bin: the series is "
            "all gaps. Check the region (coordinates are (lon, lat); boxes (lon_min, lat_min, lon_max, lat_max)) "
            "and that the granules reach it.",
            Is2gridWarning,
            stacklevel=3,
        )
    count, mean_length, mean, std = reduction.statistics(
        totals.n_segments.values.astype(np.int64),
        totals.sum_length.values,
        totals.sum_length_h.values,
        totals.sum_length_h2.values,
    )
    dims = totals.n_segments.dims
    empty = count == 0
    said = _series_attrs(stats)
    values = {"count": count.astype(np.int64), "mean": mean, "std": std, "mean_length": mean_length}
    out = xr.Dataset(
        {
            **{said[role][0]: (dims, data, said[role][1]) for role, data in values.items()},
            "n_cells": (dims, np.where(empty, 0, totals.n_cells.values).astype(np.int64), N_CELLS_ATTRS),
        },
        coords=_bin_coords(gridded),
    )
    out.attrs.update(
        kind="region time series",
        region=area.name,
        region_title=area.title,
        region_bbox=list(area.bbox),
        region_source=area.source,
        grid=gridded.attrs.get("grid", ""),
        time_binning=gridded.attrs.get("time_binning", ""),
        filters=gridded.attrs.get("filters", ""),
        **{k: gridded.attrs[k] for k in ("product", "gridded_variable") if k in gridded.attrs},
        method="exact from cell sums: N, sum(L), sum(L h), sum(L h^2) of the cells whose centre lies in the region",
    )
    return out


def segments_timeseries(ds: xr.Dataset, region: Any, freq: str | None = "1D", res: float = 6250, **options: Any):
    """The time series of a region straight from segments, without a dense grid.

    Each segment counts where the centre of its EASE-Grid 2.0 cell of ``res`` lies, so the numbers
    equal :func:`region_timeseries` of ``to_ease2(res=res, freq=freq)``; the sums are taken over the
    occupied cells only.

    Parameters
    ----------
    ds : xarray.Dataset
        Segments (``engine="atl10"``, :func:`is2grid.open_granules`).
    region : str, tuple, shapely geometry or GeoJSON
        See :func:`is2grid.grid.regions.region`.
    freq : str or None
        Time bins (a pandas alias).
    res : float
        The cell size that decides membership at the region's edge.
    **options
        ``variable`` and the filters of :meth:`is2grid.grid.request.GridRequest.create` (``segment_types``,
        ``value_range``...).

    Examples
    --------
    >>> import tempfile
    >>> from is2grid import tutorial
    >>> ds = xr.open_dataset(tutorial.write_granule(tempfile.mkdtemp(), n_segments=2000), engine="atl10")
    >>> a = segments_timeseries(ds, "indian", res=25000)
    >>> b = region_timeseries(ds.is2grid.to_ease2(res=25000), "indian")
    >>> bool((a.n_segments == b.n_segments).all())
    True
    """
    from is2grid.grid.grids import to_lonlat
    from is2grid.grid.request import GridRequest
    from is2grid.products import icesat2, of_dataset

    area = as_region(region)
    options.setdefault("hemisphere", icesat2.hemisphere_of_dataset(ds))
    area.check_hemisphere(options["hemisphere"])
    options.setdefault("product", of_dataset(ds))
    request = GridRequest.create("ease2", res=res, freq=freq, **options)
    columns = {n: ds[n].values for n in request.needed}
    if columns["delta_time"].dtype.kind != "M":
        raise GridError("delta_time must be decoded datetimes: open the granule with the default decode_times=True.")
    sums = reduction.cell_sums(columns, request)
    grid = request.grid
    ordinal, row, col = grid.split_keys(sums.keys)
    lon, lat = to_lonlat(grid.x[col], grid.y[row], grid.crs)
    inside = area.contains(lon, lat)
    if request.bins.freq is None:
        ordinals = np.zeros(1, dtype=np.int64)
    elif ordinal.size:  # the bins of all the data, as gridding has them: the region's empty bins are gaps
        ordinals = np.arange(ordinal.min(), ordinal.max() + 1)
    else:
        ordinals = np.zeros(0, dtype=np.int64)
    where = np.searchsorted(ordinals, ordinal[inside])
    size = len(ordinals)
    dims = ("time",) if request.bins.freq is not None else ()

    def total(values):
        out = np.bincount(where, weights=np.asarray(values, dtype=np.float64)[inside], minlength=size)
        return out if dims else out[0]

    totals = xr.Dataset(
        {
            "n_segments": (dims, total(sums.count)),
            "sum_length": (dims, total(sums.sum_length)),
            "sum_length_h": (dims, total(sums.sum_length_h)),
            "sum_length_h2": (dims, total(sums.sum_length_h2)),
            "n_cells": (dims, total(np.ones(sums.keys.size))),
        }
    )
    coords = xr.Dataset()
    attrs = {
        "grid": grid.name,
        "time_binning": freq or "none",
        "filters": request.filters.describe(),
        "product": request.product.name,
        "gridded_variable": request.variable,
    }
    if dims:
        starts = request.bins.starts(ordinals)
        coords = coords.assign_coords(
            time=("time", starts, {"standard_name": "time", "long_name": f"start of the {freq} time bin (UTC)"}),
        )
    coords.attrs.update(attrs)
    return _series(totals, coords, area, request.statistics)
