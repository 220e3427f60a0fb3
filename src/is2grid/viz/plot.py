"""Quicklook maps in the grid's own projection (Lambert azimuthal equal area for EASE-Grid 2.0).

The NSIDC tutorial drew EASE-Grid 2.0 data on an azimuthal *equidistant* map; here the map
projection is built from the result's own ``crs`` variable, so it is always the true one.
Coastlines are Natural Earth 1:110m outlines shipped with the package (:mod:`is2grid.viz.coastlines`).
"""

from __future__ import annotations

from pathlib import Path

import xarray as xr

from is2grid._extras import need

__all__ = ["cartopy_crs", "quicklook", "timeseries_figure"]


def cartopy_crs(gridded: xr.Dataset):
    """The cartopy projection of a gridded Dataset's ``crs`` variable, bounded around its cells.

    Examples
    --------
    >>> from is2grid import grids
    >>> g = grids.ease2_grid("south", 25000).window(100, 119, 200, 239)
    >>> ds = xr.Dataset(coords={"x": g.x, "y": g.y, "crs": ((), 0, g.cf_grid_mapping())})
    >>> cartopy_crs(ds).x_limits
    (-4250000.0, -2750000.0)
    """
    need("viz", "maps", ("matplotlib", "cartopy"))
    import cartopy.crs as ccrs
    from pyproj import CRS

    projection = ccrs.Projection(CRS.from_cf(gridded["crs"].attrs))
    # cartopy bounds a pyproj CRS by its EPSG area of use, which is empty for these polar CRSs (the
    # map would show nothing), so the cells' extent, with a margin for the map's padding, bounds it
    half = abs(float(gridded.x[1] - gridded.x[0])) / 2 if gridded.sizes.get("x", 0) > 1 else 1.0
    x0, x1 = float(gridded.x.min()) - half, float(gridded.x.max()) + half
    y0, y1 = float(gridded.y.min()) - half, float(gridded.y.max()) + half
    pad = 0.25 * max(x1 - x0, y1 - y0)
    projection.bounds = (x0 - pad, x1 + pad, y0 - pad, y1 + pad)
    projection.threshold = max(x1 - x0, y1 - y0) / 1000
    return projection


def _period(gridded: xr.Dataset, time_index) -> str:
    if "time" not in gridded.dims:
        start, end = gridded.attrs.get("time_coverage_start"), gridded.attrs.get("time_coverage_end")
        return f"{start[:19]} to {end[:19]} UTC" if start and end else "all times"
    times = gridded.time.values
    if time_index is None:
        return f"{str(times[0])[:10]} to {str(times[-1])[:10]} ({gridded.attrs.get('time_binning')} bins combined)"
    return f"{gridded.attrs.get('time_binning')} bin starting {str(times[time_index])[:19]} UTC"


def quicklook(
    gridded: xr.Dataset, variable: str | None = None, path=None, time_index: int | None = None, dpi: int = 110
):
    """Draw one statistic on a map in the grid's projection, with coastlines and a colour bar.

    Parameters
    ----------
    gridded : xarray.Dataset
        A result of ``to_ease2`` / ``to_grid``.
    variable : str, optional
        ``"mean_fb"``, ``"std_fb"``, ``"n_segments"``, ``"mean_seg_length"`` (or the statistics of another
        gridded variable); default the gridded mean.
    path : str or Path, optional
        Write a PNG there; the figure is returned either way.
    time_index : int, optional
        One time bin; by default all bins are combined exactly (see :func:`is2grid.grid.gridding.collapse_time`).

    Returns
    -------
    matplotlib.figure.Figure
    """
    need("viz", "maps", ("matplotlib", "cartopy"))
    import matplotlib

    if path is not None:
        matplotlib.use("Agg", force=False)
    import cartopy.crs as ccrs
    import matplotlib.pyplot as plt

    from is2grid.grid.gridding import collapse_time
    from is2grid.viz.coastlines import coastlines

    if variable is None:
        from is2grid.grid.gridding import statistic_names

        variable = statistic_names(gridded)["mean"]
    period = _period(gridded, time_index)
    if "time" in gridded.dims:
        gridded = gridded.isel(time=time_index) if time_index is not None else collapse_time(gridded)
    proj = cartopy_crs(gridded)
    values = gridded[variable]
    fig = plt.figure(figsize=(8, 7.2))
    ax = fig.add_subplot(1, 1, 1, projection=proj)
    half = float(gridded.attrs.get("grid_resolution_m", 0)) / 2
    x0, x1 = float(gridded.x.min()) - half, float(gridded.x.max()) + half
    y0, y1 = float(gridded.y.min()) - half, float(gridded.y.max()) + half
    pad = 0.05 * max(x1 - x0, y1 - y0, 1.0)
    ax.set_extent((x0 - pad, x1 + pad, y0 - pad, y1 + pad), crs=proj)
    data = values.where(values > 0) if variable == "n_segments" else values
    mesh = ax.pcolormesh(gridded.x, gridded.y, data, transform=proj, shading="nearest", cmap="viridis")
    for line in coastlines():
        ax.plot(line[:, 0], line[:, 1], transform=ccrs.Geodetic(), color="0.25", linewidth=0.6)
    ax.gridlines(color="0.7", linewidth=0.4, linestyle=":")
    bar = fig.colorbar(mesh, ax=ax, shrink=0.8, pad=0.03)
    bar.set_label(f"{values.attrs.get('long_name', variable)} ({values.attrs.get('units', '')})")
    ax.set_title(f"{gridded.attrs.get('grid', '')}: {values.attrs.get('long_name', variable)}\n{period}", fontsize=10)
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return fig


def timeseries_figure(series: xr.Dataset, path=None, dpi: int = 110):
    """A region time series as a static figure: mean freeboard with its spread, and segments per bin.

    Bins without segments stay gaps. Returns the matplotlib figure; writes a PNG to ``path`` if given.
    """
    need("viz", "time series figures", ("matplotlib",))
    import matplotlib

    if path is not None:
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    time = series.time.values
    mean, std = series.mean_fb.values, series.std_fb.values
    units = series.mean_fb.attrs.get("units", "m")
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8.5, 5.2), sharex=True, height_ratios=(3, 1))
    top.fill_between(time, mean - std, mean + std, color="#4c78a8", alpha=0.25, linewidth=0, label="mean ± std")
    top.plot(time, mean, color="#1f3b73", marker="o", markersize=3.5, linewidth=1.6, label="length-weighted mean")
    top.set_ylabel(f"freeboard ({units})")
    top.grid(True, color="0.88")
    top.legend(loc="upper left", fontsize=8, frameon=False)
    title = series.attrs.get("region_title", "region")
    top.set_title(f"{title}: sea ice freeboard per {series.attrs.get('time_binning', '')} bin "
                  f"({series.attrs.get('grid', '')})", fontsize=10)  # fmt: skip
    bottom.bar(time, series.n_segments.values, width=0.8 * _step(time), color="0.55")
    bottom.set_ylabel("segments")
    bottom.grid(True, axis="y", color="0.88")
    fig.autofmt_xdate()
    fig.tight_layout()
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return fig


def _step(time):
    import numpy as np

    if len(time) < 2:
        return np.timedelta64(1, "D")
    return np.min(np.diff(time))
