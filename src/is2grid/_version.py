"""The installed version of is2grid, for the attributes of what it writes."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("is2grid")
except PackageNotFoundError:  # pragma: no cover
    __version__ = "0+unknown"
