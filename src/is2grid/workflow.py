"""Many granules to one grid: per-granule partial sums (locally or on a Dask cluster), merged, labelled.

Only the small sparse sums of each granule travel and stay in memory, so a month or a year of
granules needs memory for one granule plus the output grid.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from is2grid import atl10, gridding, grids
from is2grid import credentials as credentials_module
from is2grid.credentials import as_credentials
from is2grid.errors import GridError, Is2gridWarning, OutputError
from is2grid.inputs import is_granule_record

__all__ = ["check_output", "grid_granules", "write_netcdf"]


def _granule_partial(path, grid, bins, filters, beams, credentials, names, storage_options) -> gridding.Partial:
    variables = [n for n in names if n not in atl10.COORDINATES]
    # read-ahead: the first variable read fetches the chunks of all of them, in one plan
    options = {"read_ahead": True, **(storage_options or {})}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Is2gridWarning)  # transition granules contribute nothing, by design
        ds = xr.open_dataset(
            path, engine="atl10", beams=beams, variables=variables, credentials=credentials, storage_options=options
        )
    try:
        return gridding._call_partial({n: ds[n].values for n in names}, grid, bins, filters)
    finally:
        ds.close()


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


def _hemisphere_of(names: Sequence[str]) -> str:
    found = {atl10.hemisphere_from_name(name) for name in names}
    if found in ({"north"}, {"south"}):
        return str(found.pop())
    if {"north", "south"} <= found:
        raise GridError("the granules mix ATL10-01 (Arctic) and ATL10-02 (Antarctic): grid each hemisphere separately.")
    raise GridError("cannot tell the hemisphere from the file names: pass hemisphere='north' or 'south'.")


def grid_granules(
    paths: Sequence[str | os.PathLike | Any],
    *,
    res: float = 6250,
    grid: grids.Grid | str | None = None,
    hemisphere: str | None = None,
    freq: str | None = "1D",
    bbox: tuple[float, float, float, float] | None = None,
    bbox_xy: tuple[float, float, float, float] | None = None,
    full_grid: bool = False,
    time_range: tuple[Any, Any] | None = None,
    segment_types: Sequence[int] | None = None,
    max_quality: int | None = None,
    fb_range: tuple[float, float] | None = None,
    min_segments: int = 1,
    beams: str | list[str] = "strong",
    credentials: Any = None,
    storage_options: dict[str, Any] | None = None,
    client: Any = None,
    progress: bool = True,
) -> xr.Dataset:
    """Grid many ATL10 granules (paths, s3:// or https:// URLs, earthaccess search results) onto one grid.

    Same options and result as :meth:`is2grid.accessor.Is2gridAccessor.to_grid`; the grid is EASE-Grid 2.0
    at ``res`` unless ``grid`` is given. With a ``dask.distributed`` ``client`` (e.g. a Coiled cluster in
    us-west-2 next to the data), each granule is read and summed on a worker; otherwise granules are read
    one after another here. A progress bar shows granules done.

    Examples
    --------
    >>> import tempfile
    >>> from is2grid import tutorial
    >>> paths = [tutorial.write_granule(tempfile.mkdtemp(), n_segments=1000, rgt=r) for r in (10, 20)]
    >>> result = grid_granules(paths, res=25000, progress=False)
    >>> int(result.n_segments.sum()) == result.attrs["segments_gridded"]
    True
    """
    urls: list[Any] = [p if is_granule_record(p) else os.fspath(p) for p in paths]
    if not urls:
        raise GridError("no granules given: pass a list of ATL10 paths or URLs (earthaccess.search_data finds them).")
    urls = _without_duplicates(urls)
    names = [_name_of(u) for u in urls]
    hemi = hemisphere or _hemisphere_of(names)
    if credentials is not None or client is not None:
        credentials = as_credentials(credentials)
    if client is not None and credentials is not None:
        client.run(credentials_module.register, credentials.portable())
    if grid is None:
        grid = grids.ease2_grid(hemi, res)
    elif isinstance(grid, str):
        grid = grids.grid_by_name(grid, hemi)
    filters = gridding.Filters.from_options(
        segment_types=segment_types, max_quality=max_quality, fb_range=fb_range, bbox=bbox, hemisphere=hemi
    )
    probe = xr.Dataset({n: ("segment", np.zeros(0)) for n in (*gridding.NEEDED, *filters.needs())})
    gridding._check_inputs(probe, filters, min_segments, bbox, bbox_xy, full_grid)
    bins = gridding.TimeBins(freq)
    window = gridding._fixed_window(grid, bbox, bbox_xy, full_grid)
    needed = (*gridding.NEEDED, *filters.needs())
    target = window or grid.full()
    args = (target, bins, filters, beams, credentials, needed, storage_options)

    bar = _progress(len(urls), progress)
    total = gridding.Partial.empty()
    pending: list[gridding.Partial] = []
    for part in _run(urls, args, client):
        pending.append(part)
        if len(pending) >= 16:
            total = gridding.combine(total, *pending)
            pending = []
        if bar is not None:
            bar.update()
    total = gridding.combine(total, *pending)
    if bar is not None:
        bar.close()
    ordinals = gridding._fixed_ordinals(bins, time_range)
    attrs = {"hemisphere": hemi, "granules": " ".join(names)}
    return gridding.grid_from_total(
        total,
        grid,
        bins,
        window=window,
        ordinals=ordinals,
        filters=filters,
        min_segments=min_segments,
        source_attrs=attrs,
    )


def _run(paths, args, client):
    if client is None:
        for path in paths:
            yield _granule_partial(path, *args)
        return
    from distributed import as_completed

    futures = client.map(_granule_partial, paths, *[[a] * len(paths) for a in args], pure=False)
    for future in as_completed(futures):
        yield future.result()


def _progress(total: int, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="gridding granules", unit="granule")


def write_netcdf(
    grid: xr.Dataset, path: str | os.PathLike, *, overwrite: bool = False, inputs: Sequence[Any] = ()
) -> str:
    """Write a gridded result as compressed CF netCDF-4 (deflate 4, one chunk per time bin).

    The file is written under a temporary name in the same folder and renamed when complete, so
    ``path`` is never a half-written file. An existing ``path`` is replaced only with ``overwrite``;
    a path among ``inputs`` (the granules) never is.
    """
    target = check_output(path, overwrite=overwrite, inputs=inputs)
    encoding: dict[Any, dict[str, Any]] = {}
    for name, var in grid.data_vars.items():
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
        grid.to_netcdf(partial, engine="netcdf4", encoding=encoding)
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
