"""Plot titles without ``crs = 0``: a scalar grid-mapping coordinate is left out of xarray's titles.

xarray titles a plot of a slice with its scalar coordinates (``time = 2019-09-01``), and hvplot
takes the same title from xarray. A CF grid mapping is a scalar coordinate too (is2grid's ``crs``,
rioxarray's ``spatial_ref``) that must stay a coordinate, so that rioxarray and hvplot find the CRS
of a DataArray. CF says the grid mapping holds no data; its value (0) says nothing, and titles read
``crs = 0, time = 2019-09-01`` (rioxarray users know ``spatial_ref = 0``: corteva/rioxarray#443).

:func:`register` (called by ``import is2grid``) makes xarray leave such coordinates out of its titles:
a scalar coordinate with a ``grid_mapping_name`` or ``crs_wkt`` attribute, the two attributes CF
defines for a grid-mapping variable. Every other coordinate is titled as before. The change that
would make this unnecessary upstream is :data:`UPSTREAM_FIX` (``DataArray._title_for_slice``).

Examples
--------
>>> import numpy as np
>>> import xarray as xr
>>> crs = xr.Variable((), 0, {"grid_mapping_name": "lambert_azimuthal_equal_area"})
>>> da = xr.DataArray(np.zeros((2, 2)), dims=("y", "x"), coords={"time": np.datetime64("2019-09-01"), "crs": crs})
>>> register()
>>> da._title_for_slice()
'time = 2019-09-01'
"""

from __future__ import annotations

import functools

import xarray as xr

__all__ = ["UPSTREAM_FIX", "is_grid_mapping", "register"]

#: the change to ``xarray/core/dataarray.py`` that makes :func:`register` unnecessary
UPSTREAM_FIX = """\
         for dim, coord in self.coords.items():
-            if coord.size == 1:
+            grid_mapping = coord.ndim == 0 and ("grid_mapping_name" in coord.attrs or "crs_wkt" in coord.attrs)
+            if coord.size == 1 and not grid_mapping:
"""


def is_grid_mapping(coord: xr.DataArray) -> bool:
    """True for a scalar CF grid-mapping variable (it has ``grid_mapping_name`` or ``crs_wkt``)."""
    return coord.ndim == 0 and ("grid_mapping_name" in coord.attrs or "crs_wkt" in coord.attrs)


def register() -> None:
    """Leave scalar grid-mapping coordinates out of xarray's (and hvplot's) plot titles; idempotent."""
    original = getattr(xr.DataArray, "_title_for_slice", None)
    if original is None or getattr(original, "_is2grid", False):
        return  # a future xarray without this private method: titles are its own

    @functools.wraps(original)
    def _title_for_slice(self, *args, **kwargs):
        hidden = [name for name, coord in self.coords.items() if is_grid_mapping(coord)]
        return original(self.drop_vars(hidden) if hidden else self, *args, **kwargs)

    _title_for_slice._is2grid = True  # type: ignore[attr-defined]
    xr.DataArray._title_for_slice = _title_for_slice  # type: ignore[method-assign]
