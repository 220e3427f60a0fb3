"""is2grid: ICESat-2 ATL10 sea ice freeboard as xarray, gridded onto EASE-Grid 2.0.

>>> import xarray as xr
>>> import is2grid
>>> "atl10" in xr.backends.list_engines()
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
    NotATL10Error,
    NotHDF5Error,
    OutputError,
    RemoteReadError,
    UnsupportedInputError,
    UnsupportedVersionError,
)
from is2grid.grids import Grid, ease2_grid, nsidc_polar_stereo_grid

try:
    __version__ = version("is2grid")
except PackageNotFoundError:  # pragma: no cover
    __version__ = "0+unknown"

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
    "NotATL10Error",
    "NotHDF5Error",
    "OutputError",
    "RemoteReadError",
    "UnsupportedInputError",
    "UnsupportedVersionError",
    "__version__",
    "ease2_grid",
    "nsidc_polar_stereo_grid",
]
