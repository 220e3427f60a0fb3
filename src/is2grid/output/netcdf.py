"""NetCDF output: a gridded result as one compressed CF-1.8 netCDF-4 file, written whole or not at all."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from is2grid.errors import OutputError
from is2grid.grid import gridding

__all__ = ["check_output", "write_netcdf"]


def write_netcdf(
    gridded: xr.Dataset, path: str | os.PathLike, *, overwrite: bool = False, inputs: Sequence[Any] = ()
) -> str:
    """Write a gridded result as compressed CF netCDF-4 (deflate 4, one chunk per time bin, float32 statistics).

    The file is written under a temporary name in the same folder and renamed when complete, so
    ``path`` is never a half-written file. An existing ``path`` is replaced only with ``overwrite``;
    a path among ``inputs`` (the granules) never is.
    """
    target = check_output(path, overwrite=overwrite, inputs=inputs)
    gridded = _cf_clean(gridded)
    encoding: dict[Any, dict[str, Any]] = {}
    for coord in ("time", "time_bounds", "y", "x", "granule"):
        if coord in gridded.variables:  # CF 2.5.1 and 7.1: no fill values on coordinates and bounds
            encoding[coord] = {"_FillValue": None}
    for coord in ("time", "time_bounds"):
        if coord in gridded.variables:  # CF 1.8 (2.2) has no 64-bit integers: whole seconds as doubles, exact
            encoding[coord].update(dtype="float64", units=gridding.TIME_UNITS, calendar="proleptic_gregorian")
    if "granule" in gridded.variables:  # a fixed-length character array: CF has no variable-length strings
        encoding["granule"].update(dtype="S1", char_dim_name="granule_name_length")
    for name, var in gridded.data_vars.items():
        if name in encoding or not var.ndim:
            continue
        chunks = tuple(1 if d == "time" else max(1, n) for d, n in zip(var.dims, var.shape, strict=True))
        encoding[name] = {
            "zlib": True,
            "complevel": 4,
            "shuffle": True,
            "chunksizes": chunks if all(var.shape) else None,
        }
        if var.dtype.kind == "f":  # statistics stored as float32 (7 digits: far below the data's precision)
            encoding[name].update(dtype="float32", _FillValue=np.float32(np.nan))
        encoding[name] = {k: v for k, v in encoding[name].items() if v is not None}
    partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
    try:
        gridded.to_netcdf(partial, engine="netcdf4", encoding=encoding)
        os.replace(partial, target)
    except (OSError, RuntimeError) as err:
        # netCDF-C reports a full disk as "NetCDF: HDF error" (or, at creation, a misleading permission error)
        partial.unlink(missing_ok=True)
        if _disk_full(target.parent, err):
            raise OutputError(
                f"{target}: the disk is full (or the quota used up) while writing; nothing was written. Free space "
                f"(the file needs about {gridded.nbytes / 1e6:.0f} MB before compression) or write to another disk."
            ) from err
        reason = _not_writable(target.parent)
        if reason:
            raise OutputError(f"{target.parent}: cannot write there ({reason}). Choose another folder.") from err
        raise
    finally:
        partial.unlink(missing_ok=True)
    return os.fspath(path)


def _cf_clean(gridded: xr.Dataset) -> xr.Dataset:
    """The result as CF checkers want a file: the granule list not a coordinate, a history.

    The granule names become ``granule(n_granules, granule_name_length)`` characters: a string-valued
    coordinate variable is not CF (2.2), and netCDF's variable-length strings are not either. ``crs`` stays
    a coordinate, so that each variable read back carries it (rioxarray finds the CRS of ``ds.mean_fb``);
    cfchecker warns that it has no units, which a grid mapping variable needs none of.
    """
    import datetime

    from is2grid._version import __version__

    out = gridded
    if "granule" in out.variables:
        names = out["granule"]
        out = out.drop_vars("granule").assign(granule=("n_granules", names.values.astype(str), names.attrs))
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    line = f"{stamp}: gridded and written by is2grid {__version__} (is2grid.output.netcdf.write_netcdf)"
    out.attrs["history"] = f"{out.attrs['history']}\n{line}" if out.attrs.get("history") else line
    return out


def _disk_full(folder: Path, err: BaseException) -> bool:
    import errno

    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        return True
    try:
        usage = os.statvfs(folder)
    except OSError:
        return False
    return usage.f_bavail * usage.f_frsize < 1 << 20


def _not_writable(folder: Path) -> str | None:
    """Why ``folder`` cannot take a new file (read-only file system, permission), or None."""
    try:
        if os.statvfs(folder).f_flag & os.ST_RDONLY:
            return "read-only file system"
    except OSError:
        return None
    return None if os.access(folder, os.W_OK) else "permission denied"


def check_output(path: str | os.PathLike, *, overwrite: bool = False, inputs: Sequence[Any] = ()) -> Path:
    """Check, before any work, that ``path`` can be written: raises :class:`OutputError` saying why not."""
    target = Path(path)
    if target.is_dir():
        raise OutputError(f"{target}: is a folder; give a file name such as {target / 'freeboard.nc'}.")
    local_inputs = {
        Path(os.fspath(p)).resolve() for p in inputs if isinstance(p, str | os.PathLike) and "://" not in os.fspath(p)
    }
    if target.resolve() in local_inputs:
        raise OutputError(f"{target}: is one of the input granules; write the result somewhere else.")
    if target.exists() and not overwrite:
        raise OutputError(f"{target}: exists already. Pass overwrite=True (--overwrite) to replace it.")
    folder = target.parent
    if not folder.is_dir():
        raise OutputError(
            f"{folder}: no such folder for {target.name}. Create it first (mkdir -p {folder}) or choose another path."
        )
    reason = _not_writable(folder)
    if reason:
        raise OutputError(f"{folder}: cannot write there ({reason}). Choose another folder.")
    return target
