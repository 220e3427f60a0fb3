"""A user's gridded field (snow depth, density, ice type) read at each segment: nearest or bilinear.

The grid is a DataArray with 1-D coordinates: ``lat``/``lon`` (or ``latitude``/``longitude``) in
degrees, or projected ``x``/``y`` with a CRS (a CF grid mapping the DataArray names, or ``crs=``). With a
``time`` dimension each segment takes the nearest time step, which must lie within half a step of it
(31 days for a single step, as a monthly field labelled by its month). Segments outside the grid or its
times are an error, not NaN; NaN cells give NaN.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from is2grid.errors import GridError

__all__ = ["sample"]

LAT_NAMES = ("lat", "latitude")
LON_NAMES = ("lon", "longitude")


def sample(
    field: xr.DataArray,
    lat,
    lon,
    times=None,
    *,
    method: str = "nearest",
    crs: Any = None,
    what: str = "the field",
) -> np.ndarray:
    """The values of ``field`` at the points (lat, lon[, times]).

    Parameters
    ----------
    field : xarray.DataArray
        On (lat, lon), (y, x) with a CRS, optionally with ``time`` first.
    lat, lon : array-like
        Points in degrees.
    times : array-like of datetime64, optional
        Needed when ``field`` has ``time``.
    method : {"nearest", "linear"}
        The cell a point is nearest to, or bilinear between the four around it.
    crs : optional
        The CRS of ``x``/``y`` when ``field`` does not name a grid mapping (anything pyproj takes).
    what : str
        How errors name the field.

    Returns
    -------
    numpy.ndarray of float64

    Examples
    --------
    >>> grid = xr.DataArray([[0.1, 0.2], [0.3, 0.4]], coords={"lat": [80.0, 81.0], "lon": [0.0, 10.0]},
    ...                     dims=("lat", "lon"))
    >>> sample(grid, [80.2, 80.5], [1.0, 5.0], method="linear").round(3)
    array([0.15, 0.25])
    """
    if method not in ("nearest", "linear"):
        raise GridError(f"method={method!r}: use 'nearest' or 'linear' (bilinear) to sample {what}.")
    if isinstance(field, xr.Dataset):
        raise GridError(f"{what}: give a DataArray (one variable of the Dataset), not a Dataset.")
    lat = np.asarray(lat, dtype=np.float64)
    lon = np.asarray(lon, dtype=np.float64)
    axes, (u, v) = _axes(field, lat, lon, crs, what)
    data = field
    if "time" in field.dims:
        data = field.transpose("time", *axes)
        step = _time_steps(field, times, what)
    else:
        data = field.transpose(*axes)
        step = None
    values = np.asarray(data.values, dtype=np.float64)
    fy = _fraction(np.asarray(field[axes[0]].values, dtype=np.float64), u, axes[0], what)
    fx = _fraction(np.asarray(field[axes[1]].values, dtype=np.float64), v, axes[1], what)
    lead = (step,) if step is not None else ()
    if method == "nearest":
        return values[(*lead, np.rint(fy).astype(np.int64), np.rint(fx).astype(np.int64))]
    y0 = np.clip(np.floor(fy).astype(np.int64), 0, max(values.shape[-2] - 2, 0))
    x0 = np.clip(np.floor(fx).astype(np.int64), 0, max(values.shape[-1] - 2, 0))
    y1 = np.minimum(y0 + 1, values.shape[-2] - 1)
    x1 = np.minimum(x0 + 1, values.shape[-1] - 1)
    wy, wx = np.clip(fy - y0, 0.0, 1.0), np.clip(fx - x0, 0.0, 1.0)
    return (
        values[(*lead, y0, x0)] * (1 - wy) * (1 - wx)
        + values[(*lead, y0, x1)] * (1 - wy) * wx
        + values[(*lead, y1, x0)] * wy * (1 - wx)
        + values[(*lead, y1, x1)] * wy * wx
    )


def _axes(field: xr.DataArray, lat, lon, crs, what):
    """The two spatial dimensions (slow, fast) and the points in their coordinates."""
    names = set(field.dims)
    lat_name = next((n for n in LAT_NAMES if n in names), None)
    lon_name = next((n for n in LON_NAMES if n in names), None)
    if lat_name and lon_name:
        axes = tuple(d for d in field.dims if d in (lat_name, lon_name))
        lons = np.asarray(field[lon_name].values, dtype=np.float64)
        if lons.size and lons.max() > 180.0:  # a 0..360 grid
            lon = np.mod(lon, 360.0)
        else:
            lon = (lon + 180.0) % 360.0 - 180.0
        points = {lat_name: lat, lon_name: lon}
        return axes, (points[axes[0]], points[axes[1]])
    if {"x", "y"} <= names:
        from pyproj import CRS

        from is2grid.grid.grids import to_xy

        found = crs if crs is not None else _grid_mapping(field)
        if found is None:
            raise GridError(
                f"{what} is on x/y but names no CRS: give it a CF grid mapping (a 'crs' coordinate with "
                "crs_wkt or grid_mapping_name, named by a grid_mapping attribute) or pass crs=..."
            )
        target = found if isinstance(found, CRS) else CRS.from_user_input(found)
        x, y = to_xy(lon, lat, target.to_string())
        axes = tuple(d for d in field.dims if d in ("x", "y"))
        points = {"x": x, "y": y}
        return axes, (points[axes[0]], points[axes[1]])
    raise GridError(
        f"{what} has dimensions {tuple(field.dims)}: is2grid samples grids with 1-D lat/lon (or latitude/"
        "longitude) or projected x/y coordinates (and optionally time). Regrid a curvilinear field first."
    )


def _grid_mapping(field: xr.DataArray):
    from pyproj import CRS

    name = field.attrs.get("grid_mapping") or field.encoding.get("grid_mapping")
    candidates = [name] if name else ["crs", "spatial_ref"]
    for candidate in candidates:
        if candidate in field.coords:
            attrs = field[candidate].attrs
            try:
                return CRS.from_cf(attrs) if "grid_mapping_name" in attrs or "crs_wkt" in attrs else None
            except Exception:
                return None
    return None


def _fraction(coords: np.ndarray, points: np.ndarray, axis: str, what: str) -> np.ndarray:
    """Fractional index of each point along a monotonic 1-D coordinate; a point outside is an error."""
    if coords.size == 0:
        raise GridError(f"{what} has no cells along {axis}.")
    descending = coords.size > 1 and coords[0] > coords[-1]
    ascending = coords[::-1] if descending else coords
    if ascending.size > 1 and not np.all(np.diff(ascending) > 0):
        raise GridError(f"{what}: its {axis} coordinate is not monotonic; sort the grid first.")
    half = 0.5 * (float(np.median(np.diff(ascending))) if ascending.size > 1 else 0.0)
    outside = ~np.isfinite(points) | (points < ascending[0] - half) | (points > ascending[-1] + half)
    if outside.any():
        raise GridError(
            f"{int(outside.sum())} of {points.size} segments lie outside {what} along {axis} "
            f"({ascending[0]:g} to {ascending[-1]:g}); e.g. {points[outside][0]:g}. Give a grid that covers "
            "the segments (or leave those segments out)."
        )
    position = np.interp(points, ascending, np.arange(ascending.size, dtype=np.float64))
    return (ascending.size - 1) - position if descending else position


def _time_steps(field: xr.DataArray, times, what: str) -> np.ndarray:
    if times is None:
        raise GridError(f"{what} has a time dimension: the segments' times are needed to sample it.")
    steps = np.asarray(field["time"].values).astype("datetime64[ns]")
    t = np.asarray(times).astype("datetime64[ns]")
    if steps.size == 1:
        tolerance = np.timedelta64(31, "D")
        lo, hi = steps[0] - tolerance, steps[0] + tolerance
        index = np.zeros(t.shape, dtype=np.int64)
        outside = (t < lo) | (t > hi)
    else:
        order = np.argsort(steps)
        ascending = steps[order]
        half = np.median(np.diff(ascending)) / 2
        outside = (t < ascending[0] - half) | (t > ascending[-1] + half) | np.isnat(t)
        right = np.clip(np.searchsorted(ascending, t), 1, ascending.size - 1)
        left = right - 1
        pick = np.where(np.abs(t - ascending[left]) <= np.abs(ascending[right] - t), left, right)
        index = order[pick]
    if outside.any():
        raise GridError(
            f"{int(outside.sum())} segments lie outside the times of {what} ({steps.min()} to {steps.max()}); "
            "give a field that covers the segments' period."
        )
    return index
