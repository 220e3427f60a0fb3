"""Quicklook maps in the grid's own projection (Lambert azimuthal equal area for EASE-Grid 2.0).

The NSIDC tutorial drew EASE-Grid 2.0 data on an azimuthal *equidistant* map; here the map
projection is built from the result's own ``crs`` variable, so it is always the true one.
Coastlines are Natural Earth 1:110m outlines shipped with the package (no download).
"""

from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path

import numpy as np
import xarray as xr

__all__ = ["cartopy_crs", "quicklook"]


def cartopy_crs(grid: xr.Dataset):
    """The cartopy projection of a gridded Dataset's ``crs`` variable (LAEA or polar stereographic)."""
    import cartopy.crs as ccrs

    attrs = grid["crs"].attrs
    globe = ccrs.Globe(
        semimajor_axis=attrs["semi_major_axis"], inverse_flattening=attrs["inverse_flattening"], ellipse=None
    )
    if attrs["grid_mapping_name"] == "lambert_azimuthal_equal_area":
        return ccrs.LambertAzimuthalEqualArea(
            central_longitude=attrs["longitude_of_projection_origin"],
            central_latitude=attrs["latitude_of_projection_origin"],
            globe=globe,
        )
    if attrs["grid_mapping_name"] == "polar_stereographic":
        cls = ccrs.NorthPolarStereo if attrs["standard_parallel"] > 0 else ccrs.SouthPolarStereo
        return cls(
            central_longitude=attrs["straight_vertical_longitude_from_pole"],
            true_scale_latitude=attrs["standard_parallel"],
            globe=globe,
        )
    raise ValueError(f"no cartopy projection for grid_mapping_name={attrs['grid_mapping_name']!r}")


@functools.cache
def _land_rings() -> list[np.ndarray]:
    """Natural Earth 1:110m land outlines as closed (lon, lat) rings."""
    with resources.files("is2grid").joinpath("data/coastlines_110m.npz").open("rb") as f:
        data = np.load(f)
        lonlat, lengths = data["lonlat"].astype(np.float64), data["lengths"]
    return np.split(lonlat, np.cumsum(lengths)[:-1])


@functools.cache
def _coastlines() -> list[np.ndarray]:
    lines = []
    for ring in _land_rings():
        # the polygon edges Natural Earth adds along the antimeridian and the pole are not coast
        keep = (ring[:, 1] > -85.5) & (np.abs(ring[:, 0]) < 179.999)
        breaks = np.flatnonzero(np.diff(keep.astype(int)) != 0) + 1
        for piece, ok in zip(np.split(ring, breaks), np.split(keep, breaks), strict=True):
            if ok[0] and len(piece) > 1:
                lines.append(piece)
    return lines


def _period(grid: xr.Dataset, time_index) -> str:
    if "time" not in grid.dims:
        start, end = grid.attrs.get("time_coverage_start"), grid.attrs.get("time_coverage_end")
        return f"{start[:19]} to {end[:19]} UTC" if start and end else "all times"
    times = grid.time.values
    if time_index is None:
        return f"{str(times[0])[:10]} to {str(times[-1])[:10]} ({grid.attrs.get('time_binning')} bins combined)"
    return f"{grid.attrs.get('time_binning')} bin starting {str(times[time_index])[:19]} UTC"


def quicklook(grid: xr.Dataset, variable: str = "mean_fb", path=None, time_index: int | None = None, dpi: int = 110):
    """Draw one statistic on a map in the grid's projection, with coastlines and a colour bar.

    Parameters
    ----------
    grid : xarray.Dataset
        A result of ``to_ease2`` / ``to_grid``.
    variable : str
        ``"mean_fb"``, ``"std_fb"``, ``"n_segments"`` or ``"mean_seg_length"``.
    path : str or Path, optional
        Write a PNG there; the figure is returned either way.
    time_index : int, optional
        One time bin; by default all bins are combined exactly (see :func:`is2grid.gridding.collapse_time`).

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib

    if path is not None:
        matplotlib.use("Agg", force=False)
    import cartopy.crs as ccrs
    import matplotlib.pyplot as plt

    from is2grid.gridding import collapse_time

    period = _period(grid, time_index)
    if "time" in grid.dims:
        grid = grid.isel(time=time_index) if time_index is not None else collapse_time(grid)
    proj = cartopy_crs(grid)
    values = grid[variable]
    fig = plt.figure(figsize=(8, 7.2))
    ax = fig.add_subplot(1, 1, 1, projection=proj)
    half = float(grid.attrs.get("grid_resolution_m", 0)) / 2
    x0, x1 = float(grid.x.min()) - half, float(grid.x.max()) + half
    y0, y1 = float(grid.y.min()) - half, float(grid.y.max()) + half
    pad = 0.05 * max(x1 - x0, y1 - y0, 1.0)
    ax.set_extent((x0 - pad, x1 + pad, y0 - pad, y1 + pad), crs=proj)
    data = values.where(values > 0) if variable == "n_segments" else values
    mesh = ax.pcolormesh(grid.x, grid.y, data, transform=proj, shading="nearest", cmap="viridis")
    for line in _coastlines():
        ax.plot(line[:, 0], line[:, 1], transform=ccrs.Geodetic(), color="0.25", linewidth=0.6)
    ax.gridlines(color="0.7", linewidth=0.4, linestyle=":")
    bar = fig.colorbar(mesh, ax=ax, shrink=0.8, pad=0.03)
    bar.set_label(f"{values.attrs.get('long_name', variable)} ({values.attrs.get('units', '')})")
    ax.set_title(f"{grid.attrs.get('grid', '')}: {values.attrs.get('long_name', variable)}\n{period}", fontsize=10)
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return fig
