"""is2grid: ICESat-2 ATL10 sea ice freeboard and ATL07 heights as xarray, gridded onto EASE-Grid 2.0.

>>> import xarray as xr
>>> import is2grid
>>> {"atl10", "atl07"} <= set(xr.backends.list_engines())
True
"""

from is2grid import accessor as _accessor  # noqa: F401  registers ds.is2grid
from is2grid._version import __version__
from is2grid.errors import (
    AuthenticationError,
    CorruptGranuleError,
    GranuleError,
    GranuleNotFoundError,
    GridError,
    Is2gridError,
    Is2gridWarning,
    MemoryBudgetError,
    MissingExtraError,
    NotATL07Error,
    NotATL10Error,
    NotHDF5Error,
    OutputError,
    RemoteReadError,
    StoreInUseError,
    UnsupportedInputError,
    UnsupportedVersionError,
    WrongProductError,
)
from is2grid.grid.grids import Grid, ease2_grid, nsidc_polar_stereo_grid
from is2grid.io.credentials import Credentials
from is2grid.viz import geo as _geo
from is2grid.viz import titles as _titles

_geo.register()  # hvplot/GeoViews/cartopy draw is2grid's grids offline, once imported (see is2grid.viz.geo)
_titles.register()  # plot titles without "crs = 0" (see is2grid.viz.titles)

#: the modules users reach as ``is2grid.<name>`` (imported when first used), by where they live
MODULES = {
    "regions": "is2grid.grid.regions",
    "timeseries": "is2grid.grid.timeseries",
    "grids": "is2grid.grid.grids",
    "explore": "is2grid.viz.explore",
    "plot": "is2grid.viz.plot",
    "workflow": "is2grid.workflow",
    "earthdata": "is2grid.earthdata",
    "tutorial": "is2grid.tutorial",
    "products": "is2grid.products",
}


def __getattr__(name: str):
    """``is2grid.search`` and ``is2grid.open_granules``, imported when first used (keeps ``import is2grid`` light)."""
    if name == "search":
        from is2grid.earthdata import search

        return search
    if name == "open_granules":
        from is2grid.workflow import open_granules

        return open_granules
    if name in MODULES:
        import importlib

        return importlib.import_module(MODULES[name])
    raise AttributeError(f"module 'is2grid' has no attribute {name!r}")


__all__ = [
    "AuthenticationError",
    "CorruptGranuleError",
    "Credentials",
    "GranuleError",
    "GranuleNotFoundError",
    "Grid",
    "GridError",
    "Is2gridError",
    "Is2gridWarning",
    "MemoryBudgetError",
    "MissingExtraError",
    "NotATL07Error",
    "NotATL10Error",
    "NotHDF5Error",
    "OutputError",
    "RemoteReadError",
    "StoreInUseError",
    "UnsupportedInputError",
    "UnsupportedVersionError",
    "WrongProductError",
    "__version__",
    "ease2_grid",
    "nsidc_polar_stereo_grid",
    "open_granules",
    "search",
]
