"""Many granules to one grid: per-granule cell sums (locally or on a Dask cluster), merged, labelled.

Only the small sparse cell sums of each granule travel and stay in memory, so a month or a year of
granules needs memory for one granule plus the output grid.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from is2grid import atl10, gridding, grids, reduction
from is2grid import credentials as credentials_module
from is2grid.credentials import as_credentials
from is2grid.errors import AuthenticationError, GranuleError, GridError, Is2gridWarning, OutputError, RemoteReadError
from is2grid.inputs import is_granule_record
from is2grid.reduction import CellSums
from is2grid.request import GridRequest

__all__ = ["Skipped", "check_output", "grid_granules", "hemisphere_of_granules", "write_netcdf"]


def _granule_sums(path, request: GridRequest, beams, credentials, storage_options) -> CellSums:
    variables = [n for n in request.needed if n not in atl10.COORDINATES]
    # read-ahead: the first variable read fetches the chunks of all of them, in one plan
    options = {"read_ahead": True, **(storage_options or {})}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Is2gridWarning)  # transition granules contribute nothing, by design
        ds = xr.open_dataset(
            path, engine="atl10", beams=beams, variables=variables, credentials=credentials, storage_options=options
        )
    try:
        return reduction.cell_sums({n: ds[n].values for n in request.needed}, request)
    finally:
        ds.close()


@dataclass(frozen=True)
class Skipped:
    """A granule left out under ``errors="skip"``, and why."""

    granule: str
    reason: str


def _granule_outcome(path, request, beams, credentials, storage_options, errors: str) -> CellSums | Skipped:
    """The granule's sums, or under ``errors="skip"`` a :class:`Skipped` record if it cannot be read.

    A network failure gets one more try first (the fetch layer has already retried each request).
    Refused credentials always raise: they would fail every granule alike.
    """
    try:
        return _granule_sums(path, request, beams, credentials, storage_options)
    except AuthenticationError:
        raise
    except RemoteReadError:
        if errors == "raise":
            raise
        try:
            return _granule_sums(path, request, beams, credentials, storage_options)
        except AuthenticationError:
            raise
        except GranuleError as err:
            return Skipped(_name_of(path), f"{type(err).__name__}: {err}")
    except GranuleError as err:
        if errors == "raise":
            raise
        return Skipped(_name_of(path), f"{type(err).__name__}: {err}")


def hemisphere_of_granules(
    paths: Sequence[str | os.PathLike | Any], credentials: Any = None, storage_options: dict[str, Any] | None = None
) -> str:
    """The hemisphere of granules: from their names, or from the first one's own metadata if renamed.

    Raises
    ------
    is2grid.GridError
        When the names mix both hemispheres, or tell nothing and the metadata neither.
    """
    urls = [p if is_granule_record(p) else os.fspath(p) for p in paths]
    names = [_name_of(u) for u in urls]
    if urls and all(atl10.hemisphere_from_name(name) is None for name in names):
        with xr.open_dataset(
            urls[0], engine="atl10", variables=[], credentials=credentials, storage_options=storage_options
        ) as first:
            if first.attrs.get("hemisphere") in ("north", "south"):
                return str(first.attrs["hemisphere"])
    return atl10.hemisphere_of_names(names)


def _name_of(granule: Any) -> str:
    if is_granule_record(granule):
        return str(granule["meta"].get("native-id") or granule["umm"].get("GranuleUR") or "")
    return os.fspath(granule).split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]


def _without_duplicates(granules: list[Any]) -> list[Any]:
    """Each granule once: the same granule under two paths or releases would be counted twice."""
    seen: dict[str, Any] = {}
    dropped = []
    for granule in granules:
        key = atl10.granule_identity(_name_of(granule))
        if key in seen:
            dropped.append(_name_of(granule))
        else:
            seen[key] = granule
    if dropped:
        warnings.warn(
            f"{len(dropped)} granule(s) appear twice (the same granule by product, time, RGT, cycle and region) and "
            f"are gridded once: {', '.join(dropped[:5])}{' ...' if len(dropped) > 5 else ''}.",
            Is2gridWarning,
            stacklevel=3,
        )
    return list(seen.values())


def grid_granules(
    paths: Sequence[str | os.PathLike | Any],
    request: GridRequest | None = None,
    *,
    beams: str | list[str] = "strong",
    credentials: Any = None,
    storage_options: dict[str, Any] | None = None,
    client: Any = None,
    progress: bool = True,
    errors: str = "raise",
    **options: Any,
) -> xr.Dataset:
    """Grid many ATL10 granules (paths, s3:// or https:// URLs, earthaccess search results) onto one grid.

    Parameters
    ----------
    paths : sequence
        Granules: paths, ``s3://`` or ``https://`` URLs, or earthaccess search results.
    request : GridRequest, optional
        A ready request; otherwise one is built from ``options``.
    beams : str or list of str
        ``"strong"`` (default), ``"weak"``, ``"all"`` or beam names.
    credentials : optional
        See :class:`is2grid.Credentials`; installed on the workers of ``client`` once.
    storage_options : dict, optional
        Fetch options (``timeout``, ``retries``...), as for ``xr.open_dataset(..., engine="atl10")``.
    client : distributed.Client, optional
        Read and sum each granule on a worker (e.g. a Coiled cluster in us-west-2 next to the data);
        otherwise granules are read one after another here.
    progress : bool
        Show a progress bar of granules done.
    errors : {"raise", "skip"}
        ``"raise"`` (default): the first granule that cannot be read stops the run, with an error naming
        it. ``"skip"``: a granule that cannot be read (missing, damaged, not ATL10, or still failing
        after one more try over the network) is left out; the result's ``granules_skipped`` attribute and
        a warning list each with its reason. Refused credentials always raise.
    **options
        The keyword arguments of :meth:`is2grid.request.GridRequest.create`. The grid is EASE-Grid 2.0
        (``grid="ease2"``) at ``res=6250`` unless given; ``hemisphere`` defaults to the granule names'.

    Returns
    -------
    xarray.Dataset
        As :func:`is2grid.gridding.grid_segments`.

    Examples
    --------
    >>> import tempfile
    >>> from is2grid import tutorial
    >>> paths = [tutorial.write_granule(tempfile.mkdtemp(), n_segments=1000, rgt=r) for r in (10, 20)]
    >>> result = grid_granules(paths, res=25000, progress=False)
    >>> int(result.n_segments.sum()) == result.attrs["segments_gridded"]
    True
    """
    if errors not in ("raise", "skip"):
        raise GridError(f"errors={errors!r}: use 'raise' (stop at the first bad granule) or 'skip'.")
    urls: list[Any] = [p if is_granule_record(p) else os.fspath(p) for p in paths]
    if not urls:
        raise GridError("no granules given: pass a list of ATL10 paths or URLs (earthaccess.search_data finds them).")
    urls = _without_duplicates(urls)
    names = [_name_of(u) for u in urls]
    if request is None:
        if options.get("hemisphere") is None and not isinstance(options.get("grid"), grids.Grid):
            options["hemisphere"] = hemisphere_of_granules(urls, credentials, storage_options)
        request = GridRequest.create(**options)
    elif options:
        raise TypeError(f"grid_granules: give a request or options, not both ({sorted(options)}).")
    if credentials is not None or client is not None:
        credentials = as_credentials(credentials)
    if client is not None and credentials is not None:
        client.run(credentials_module.register, credentials.portable())
    args = (request, beams, credentials, storage_options, errors)

    bar = _progress(len(urls), progress)
    total = CellSums.empty()
    pending: list[CellSums] = []
    skipped: list[Skipped] = []
    for sums in _run(urls, args, client):
        if isinstance(sums, Skipped):
            skipped.append(sums)
            if bar is not None:
                bar.set_postfix(skipped=len(skipped))
                bar.update()
            continue
        pending.append(sums)
        if len(pending) >= 16:
            total = reduction.combine(total, *pending)
            pending = []
        if bar is not None:
            bar.update()
    total = reduction.combine(total, *pending)
    if bar is not None:
        bar.close()
    left_out = {s.granule for s in skipped}
    gridded = [n for n in names if n not in left_out]
    result = gridding.gridded_dataset(total, request, {"hemisphere": request.hemisphere})
    result = _with_provenance(result, gridded)
    result.attrs["granules_gridded"] = len(gridded)
    if skipped:
        result.attrs["granules_skipped"] = "\n".join(f"{s.granule}: {s.reason}" for s in skipped)
        listed = "; ".join(f"{s.granule} ({s.reason})" for s in skipped[:5])
        warnings.warn(
            f"{len(skipped)} of {len(urls)} granules skipped (errors='skip'): {listed}"
            f"{' ...' if len(skipped) > 5 else ''}. All are listed in the result's 'granules_skipped' attribute.",
            Is2gridWarning,
            stacklevel=2,
        )
    return result


def _with_provenance(result: xr.Dataset, names: list[str]) -> xr.Dataset:
    """Which granules went in: a bounded summary in the attributes, the whole list as a ``granule`` coordinate.

    The checksum is of the sorted names, one per line, so two results can be told apart by attributes alone.
    """
    import hashlib

    ordered = sorted(names, key=atl10.granule_identity)
    result = result.assign_coords(granule=("granule", ordered, {"long_name": "ATL10 granule gridded"}))
    result.attrs.update(
        granule_count=len(ordered),
        granule_first=ordered[0] if ordered else "",
        granule_last=ordered[-1] if ordered else "",
        granule_list_sha256=hashlib.sha256("\n".join(ordered).encode()).hexdigest(),
    )
    return result


def _run(paths, args, client):
    if client is None:
        for path in paths:
            yield _granule_outcome(path, *args)
        return
    from distributed import as_completed

    futures = client.map(_granule_outcome, paths, *[[a] * len(paths) for a in args], pure=False)
    for future in as_completed(futures):
        yield future.result()


def _progress(total: int, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="gridding granules", unit="granule")


def write_netcdf(
    gridded: xr.Dataset, path: str | os.PathLike, *, overwrite: bool = False, inputs: Sequence[Any] = ()
) -> str:
    """Write a gridded result as compressed CF netCDF-4 (deflate 4, one chunk per time bin).

    The file is written under a temporary name in the same folder and renamed when complete, so
    ``path`` is never a half-written file. An existing ``path`` is replaced only with ``overwrite``;
    a path among ``inputs`` (the granules) never is.
    """
    target = check_output(path, overwrite=overwrite, inputs=inputs)
    encoding: dict[Any, dict[str, Any]] = {}
    for name, var in gridded.data_vars.items():
        chunks = tuple(1 if d == "time" else max(1, n) for d, n in zip(var.dims, var.shape, strict=True))
        encoding[name] = {
            "zlib": True,
            "complevel": 4,
            "shuffle": True,
            "chunksizes": chunks if all(var.shape) else None,
        }
        if var.dtype.kind == "f":
            encoding[name]["_FillValue"] = np.float32(np.nan) if var.dtype == np.float32 else np.nan
        encoding[name] = {k: v for k, v in encoding[name].items() if v is not None}
    partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
    try:
        gridded.to_netcdf(partial, engine="netcdf4", encoding=encoding)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return os.fspath(path)


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
    folder.mkdir(parents=True, exist_ok=True) if not folder.exists() else None
    if not os.access(folder, os.W_OK):
        raise OutputError(f"{folder}: cannot write there (permission denied). Choose another folder.")
    return target
