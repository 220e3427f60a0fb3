"""The exceptions and warnings is2grid raises.

Every error names the input, says what is wrong with it and, where there is one, what to do.

    Is2gridError
    ├── GranuleError               a granule cannot be opened or read
    │   ├── GranuleNotFoundError   (also a FileNotFoundError)
    │   ├── NotHDF5Error           the bytes are not HDF5 at all
    │   ├── WrongProductError      HDF5, but not a granule of the product asked for
    │   │   ├── NotATL10Error      not an ATL10 granule (engine="atl10")
    │   │   └── NotATL07Error      not an ATL07 granule (engine="atl07")
    │   ├── UnsupportedVersionError a release whose layout is2grid does not read (ATL10 005 or older)
    │   ├── CorruptGranuleError    truncated or damaged file
    │   ├── UnsupportedInputError  not something is2grid can open (URL scheme, directory, pipe, object)
    │   ├── RemoteReadError        a remote read failed after retries, timed out or came back short
    │   └── AuthenticationError    missing, wrong or expired credentials, or access denied
    ├── GridError                  gridding input or parameters are not usable (also a ValueError)
    │   └── MemoryBudgetError      the result would not fit in memory (also a MemoryError)
    ├── MissingExtraError          a feature needs an optional extra that is not installed (also an ImportError)
    └── OutputError                the output cannot or must not be written there
        └── StoreInUseError        another process is writing the same Zarr store
"""

from __future__ import annotations

__all__ = [
    "AuthenticationError",
    "CorruptGranuleError",
    "GranuleError",
    "GranuleNotFoundError",
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
]


class Is2gridError(Exception):
    """Base class of every is2grid error."""


class GranuleError(Is2gridError):
    """A granule cannot be opened or read."""


class GranuleNotFoundError(GranuleError, FileNotFoundError):
    """The path or URL does not point to an existing object."""


class NotHDF5Error(GranuleError):
    """The file does not start with an HDF5 signature."""


class WrongProductError(GranuleError):
    """The file is HDF5 but lacks the groups every granule of the product asked for has."""


class NotATL10Error(WrongProductError):
    """The file is HDF5 but lacks the groups every ATL10 granule has."""


class NotATL07Error(WrongProductError):
    """The file is HDF5 but lacks the groups every ATL07 granule has."""


class UnsupportedVersionError(GranuleError):
    """The granule uses a release layout is2grid does not read (ATL10 release 005 or older)."""


class CorruptGranuleError(GranuleError):
    """The file is truncated or damaged, or a remote read failed."""


class UnsupportedInputError(GranuleError, ValueError):
    """Not something is2grid can open: an unknown URL scheme, a directory, a pipe, an odd object."""


class RemoteReadError(GranuleError):
    """A remote read failed after the configured retries, timed out, or returned the wrong bytes."""


class AuthenticationError(GranuleError, PermissionError):
    """Credentials are missing, wrong or expired, or they do not grant access to the granule."""


class GridError(Is2gridError, ValueError):
    """Segments or gridding parameters that cannot be gridded as asked."""


class MemoryBudgetError(GridError, MemoryError):
    """The result would not fit the memory budget; says how large it would be and what to do instead."""


class MissingExtraError(Is2gridError, ImportError):
    """A feature needs packages of an optional extra (``is2grid[viz]``, ``[dask]``, ``[earthdata]``)."""


class Is2gridWarning(UserWarning):
    """Something the user should know about the data, e.g. a transition-orientation granule."""


class OutputError(Is2gridError, ValueError):
    """The output path cannot or must not be written: a folder, an input granule, an existing file."""


class StoreInUseError(OutputError):
    """Another process is writing the Zarr store; names it (host and pid) and what to do."""
