"""is2grid: ICESat-2 ATL10 sea ice freeboard and ATL07 heights as xarray, gridded onto EASE-Grid 2.0.

>>> import xarray as xr
>>> import is2grid
>>> {"atl10", "atl07"} <= set(xr.backends.list_engines())
True
"""

from importlib.metadata import PackageNotFoundError, version

from is2grid import accessor as _accessor  # noqa: F401  (registers ds.is2grid)
from is2grid.credentials import Credentials
from is2grid.errors import (
    AuthenticationError,
    CorruptGranuleError,
    GranuleError,
    GranuleNotFoundError,
    GridError,
    Is2gridError,
    Is2gridWarning,
    MemoryBudgetError,
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
from is2grid.grids import Grid, ease2_grid, nsidc_polar_stereo_grid

try:
    __version__ = version("is2grid")
except PackageNotFoundError:  # pragma: no cover
    __version__ = "0+unknown"


def __getattr__(name: str):
    """``is2grid.search`` and ``is2grid.open_granules``, imported when first used (keeps ``import is2grid`` light)."""
    if name == "search":
        from is2grid.earthdata import search

        return search
    if name == "open_granules":
        from is2grid.workflow import open_granules

        return open_granules
    if name in ("regions", "explore", "timeseries", "workflow", "earthdata"):
        import importlib

        return importlib.import_module(f"is2grid.{name}")
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
