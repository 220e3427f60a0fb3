"""Many granules to one grid: per-granule cell sums (locally or on a Dask cluster), merged, labelled.

Only the small sparse cell sums of each granule travel and stay in memory, so a month or a year of
granules needs memory for one granule plus the output grid.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr

from is2grid import memory, products
from is2grid.backend.entrypoints import entrypoint
from is2grid.backend.store import WARN_TRANSITION
from is2grid.errors import AuthenticationError, GranuleError, GridError, Is2gridWarning
from is2grid.grid import gridding, grids, reduction
from is2grid.grid.reduction import CellSums
from is2grid.grid.request import GridRequest
from is2grid.in_flight import ByteBudget, default_bytes, default_granules, fetching, in_order, windowed
from is2grid.io.credentials import as_credentials
from is2grid.io.inputs import is_granule_record, record_name
from is2grid.memory import available_memory
from is2grid.output.netcdf import check_output, write_netcdf
from is2grid.output.zarr_store import GridStore
from is2grid.products import Product, icesat2

__all__ = [
    "Skipped",
    "available_memory",
    "check_output",
    "grid_granules",
    "hemisphere_of_granules",
    "open_granules",
    "product_of_granules",
    "write_netcdf",
]


def _granule_sums(path, request: GridRequest, beams, credentials, storage_options, thickness=None) -> CellSums:
    return _sums_of(_opened(path, request, beams, credentials, storage_options, thickness), request, thickness)


def _opened(path, request: GridRequest, beams, credentials, storage_options, thickness=None) -> xr.Dataset:
    """A granule opened for gridding; in a run in flight, also its compressed chunks fetched ahead."""
    needed = request.needed if thickness is None else _thickness_needs(request)
    variables = [n for n in needed if n not in icesat2.COORDINATES]
    # read-ahead: the first variable read fetches the chunks of all of them, in one plan
    options = {"read_ahead": True, **(storage_options or {})}
    quiet = WARN_TRANSITION.set(False)  # transition granules contribute nothing, by design
    try:
        ds = xr.open_dataset(
            path,
            engine=entrypoint(request.product.name),
            beams=beams,
            variables=variables,
            credentials=credentials,
            storage_options=options,
        )
    finally:
        WARN_TRANSITION.reset(quiet)
    try:
        per_segment = [n for n in ds.data_vars if "segment" in ds[n].dims]
        stored = sum(v.size * np.dtype(v.encoding.get("dtype", v.dtype)).itemsize for v in ds.variables.values())
        with fetching(stored) as ahead:  # (the granule asked already if its open fetched with orbit_info)
            if ahead and per_segment:
                # reading the smallest per-segment variable whole fetches the chunks of every other one (read-ahead),
                # kept compressed (row_size, per trajectory, is computed: reading it would fetch nothing)
                smallest = min(per_segment, key=lambda n: ds[n].nbytes)
                ds[smallest].values  # noqa: B018
    except BaseException:
        ds.close()
        raise
    return ds


def _sums_of(ds: xr.Dataset, request: GridRequest, thickness=None) -> CellSums:
    """Decode and grid an opened granule, then close it."""
    try:
        if thickness is not None:
            from is2grid.thickness import thickness as derive

            ds = derive(ds.load(), **thickness)
        return reduction.cell_sums({n: ds[n].values for n in request.needed}, request)
    finally:
        ds.close()


def _thickness_needs(request: GridRequest) -> tuple[str, ...]:
    """What the granule must give for thickness: its needed variables, minus the derived, plus freeboard."""
    from is2grid.thickness import NEEDS, OUTPUTS

    stored = [n for n in request.needed if n not in OUTPUTS]
    return tuple(dict.fromkeys([*stored, *NEEDS]))


@dataclass(frozen=True)
class Skipped:
    """A granule left out under ``errors="skip"``, and why."""

    granule: str
    reason: str


def _settled(path, compute: Callable[[], CellSums], errors: str) -> CellSums | Skipped:
    """``compute()``, or what ``errors`` says to do when it fails.

    Each read has been retried already, as :class:`is2grid.io.policy.RetryPolicy` says, so a granule
    is not read again. Refused credentials always raise: they would fail every granule alike.
    """
    try:
        return compute()
    except AuthenticationError:
        raise
    except GranuleError as err:
        if errors == "raise":
            raise
        return Skipped(_name_of(path), f"{type(err).__name__}: {err}")


def product_of_granules(paths: Sequence[str | os.PathLike | Any], given: Any = None) -> Product:
    """The product of granules: ``given``, else the one their names say (ATL10 for names that say none).

    Raises
    ------
    is2grid.GridError
        When the names mix products, or contradict ``given``.
    """
    names = [_name_of(p if is_granule_record(p) else os.fspath(p)) for p in paths]
    found = sorted({p.name for p in (products.of_name(n) for n in names) if p is not None})
    if given is not None:
        try:
            chosen = products.product(given)
        except ValueError as err:
            raise GridError(str(err)) from err
        if found and found != [chosen.name]:
            raise GridError(
                f"product={chosen.name!r} but the granules are {' and '.join(found)} by their names. Give the product "
                "of the granules, or leave product= out."
            )
        return chosen
    if len(found) > 1:
        raise GridError(f"the granules mix {' and '.join(found)}: grid each product separately.")
    return products.product(found[0]) if found else products.ATL10


def hemisphere_of_granules(
    paths: Sequence[str | os.PathLike | Any],
    credentials: Any = None,
    storage_options: dict[str, Any] | None = None,
    product: Product | str | None = None,
) -> str:
    """The hemisphere of granules: from their names, or from the first one's own metadata if renamed.

    Raises
    ------
    is2grid.GridError
        When the names mix both hemispheres, or tell nothing and the metadata neither.
    """
    urls = [p if is_granule_record(p) else os.fspath(p) for p in paths]
    chosen = product_of_granules(urls, product)
    names = [_name_of(u) for u in urls]
    if urls and all(chosen.hemisphere_from_name(name) is None for name in names):
        with xr.open_dataset(
            urls[0],
            engine=entrypoint(chosen.name),
            variables=[],
            credentials=credentials,
            storage_options=storage_options,
        ) as first:
            if first.attrs.get("hemisphere") in ("north", "south"):
                return str(first.attrs["hemisphere"])
    return chosen.hemisphere_of_names(names)


def _name_of(granule: Any) -> str:
    if is_granule_record(granule):
        return record_name(granule)
    return icesat2.file_name(os.fspath(granule))


def _without_duplicates(granules: list[Any]) -> list[Any]:
    """Each granule once: the same granule under two paths or releases would be counted twice."""
    seen: dict[str, Any] = {}
    dropped = []
    for granule in granules:
        key = products.granule_identity(_name_of(granule))
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
    store: str | os.PathLike | None = None,
    overwrite: bool = False,
    memory_budget: float | str | None = "auto",
    thickness: dict[str, Any] | None = None,
    in_flight: int | None = None,
    in_flight_bytes: int | None = None,
    **options: Any,
) -> xr.Dataset:
    """Grid many ATL10 or ATL07 granules (paths, s3:// or https:// URLs, earthaccess results) onto one grid.

    Parameters
    ----------
    paths : sequence
        Granules: paths, ``s3://`` or ``https://`` URLs, or earthaccess search results
        (:func:`is2grid.search`).
    request : GridRequest, optional
        A ready request; otherwise one is built from ``options``.
    beams : str or list of str
        ``"strong"`` (default), ``"weak"``, ``"all"`` or beam names.
    credentials : optional
        See :class:`is2grid.Credentials`; installed on the workers of ``client`` once.
    storage_options : dict, optional
        Fetch options (``timeout``, ``retries``...), as for ``xr.open_dataset(..., engine="atl10")``.
    client : distributed.Client, optional
        Read and sum each granule on a worker (e.g. a Coiled cluster in us-west-2 next to the data).
        In memory, the workers also merge the granules' sums in a tree and only the total comes back;
        with a ``store``, each granule's (small, sparse) sums come back to be written as bins complete.
        Without a client granules are read one after another here.
    progress : bool
        Show a progress bar of granules done.
    errors : {"raise", "skip"}
        ``"raise"`` (default): the first granule that cannot be read stops the run, with an error naming
        it. ``"skip"``: a granule that cannot be read (missing, damaged, not ATL10, or still failing
        after the retries of its reads, see :class:`is2grid.io.policy.RetryPolicy`) is left out; the
        result's ``granules_skipped`` attribute and a warning list each with its reason. Refused
        credentials always raise.
    store : str or os.PathLike, optional
        Write to this Zarr v3 store instead of memory (see :class:`is2grid.output.zarr_store.GridStore`):
        granules are taken in order of start time and each time bin is written as soon as no granule
        still to come can reach it, so memory holds the granules in flight and the open bins, whatever
        the length of the period. Statistics are stored as float32. Rerunning with the same store and
        options resumes: granules already in are skipped. Returns the store, opened lazily.
    overwrite : bool
        Replace an existing ``store`` instead of resuming it.
    memory_budget : float, "auto" or None
        Without a ``store``: bytes the dense in-memory result may take (``"auto"``: half the memory
        available when the run starts, the smallest of the machine's, the container's cgroup limit and
        ``ulimit -v``: see :func:`is2grid.memory.memory_limits`; None: no limit). A larger result raises
        :class:`is2grid.MemoryBudgetError` with its size and the fix, before it is built (before any
        granule is read when the extent is fixed by a window and a ``time_range``).
    thickness : dict, optional
        Derive sea ice thickness in each granule before gridding: the keyword arguments of
        :func:`is2grid.thickness.thickness` (``{"snow": "w99"}``...); grid one of its outputs with
        ``variable="ice_thickness"`` (or ``"snow_depth"``, ``"ice_thickness_unc"``...).
    in_flight : int, optional
        Granules read at once in each process, their results merged in the order given, so the result
        is the same as one after another. The next granules' round trips then overlap the current
        ones' decoding and gridding. Default: 8 when any granule is remote, 1 for local files (their
        reads keep the cores busy already). On a cluster each task takes a batch of granules and keeps
        as many in flight.
    in_flight_bytes : int, optional
        Bytes the granules fetched ahead may hold until they are gridded, each counted at the size of
        its arrays as stored, uncompressed (their compressed chunks take about three quarters of that).
        Default: 256 MiB (about nine full-size granules), or 1/16 of the memory available if less.
        Granules in flight open (their metadata's round trips) without counting; the earliest goes
        first, and one larger than this goes alone. The earliest also parses first, and three at most
        fetch their chunks at once (:mod:`is2grid.in_flight`), so the first granule is gridded as soon
        as its own bytes are in; and none fetches further ahead than the run's timings need (the lead of
        :class:`is2grid.in_flight.ByteBudget`). With a DMR++ sidecar naming the strong beams, a granule's
        chunks come in the same requests as its ``orbit_info`` values
        (:class:`is2grid.backend.store.FetchWithOpen`). Memory then holds these bytes plus the granule
        being gridded (one at a time, in the calling thread) and the result (``memory_budget``) or the
        open bins.
    **options
        The keyword arguments of :meth:`is2grid.grid.request.GridRequest.create`. The grid is EASE-Grid 2.0
        (``grid="ease2"``) at ``res=6250`` unless given; ``hemisphere`` and ``product`` default to the
        granules' (by their names); ``variable`` to the product's (ATL10 freeboard, ATL07 height).

    Returns
    -------
    xarray.Dataset
        As :func:`is2grid.grid.gridding.grid_segments`, with a ``granule`` coordinate (in memory) and the
        provenance attributes ``granule_count``, ``granule_first``, ``granule_last`` and
        ``granule_list_sha256``.

    Examples
    --------
    >>> import tempfile
    >>> from is2grid import tutorial
    >>> paths = [tutorial.write_granule(tempfile.mkdtemp(), n_segments=1000, rgt=r) for r in (10, 20)]
    >>> result = grid_granules(paths, res=25000, progress=False)
    >>> int(result.n_segments.sum()) == result.attrs["segments_gridded"]
    True
    >>> stored = grid_granules(paths, res=25000, progress=False, store=tempfile.mkdtemp() + "/out.zarr")
    >>> bool((stored.n_segments == result.n_segments.reindex_like(stored.n_segments, fill_value=0)).all())
    True
    """
    if errors not in ("raise", "skip"):
        raise GridError(f"errors={errors!r}: use 'raise' (stop at the first bad granule) or 'skip'.")
    urls: list[Any] = [p if is_granule_record(p) else os.fspath(p) for p in paths]
    if not urls:
        raise GridError("no granules given: pass a list of granule paths or URLs (is2grid.search finds them).")
    urls = _without_duplicates(urls)
    if request is None:
        options["product"] = product_of_granules(urls, options.get("product"))
        if options.get("hemisphere") is None and not isinstance(options.get("grid"), grids.Grid):
            options["hemisphere"] = hemisphere_of_granules(urls, credentials, storage_options, options["product"])
        request = GridRequest.create(**options)
    elif options:
        raise TypeError(f"grid_granules: give a request or options, not both ({sorted(options)}).")
    if thickness is not None:
        from is2grid.thickness import OUTPUTS

        if request.variable not in OUTPUTS:
            raise GridError(
                f"thickness= derives {', '.join(OUTPUTS)}; grid one of them (variable='ice_thickness'), not "
                f"{request.variable!r}."
            )
        if request.product.name != "ATL10":
            raise GridError("thickness= needs ATL10 granules (total freeboard).")
        from is2grid.thickness import ATTRS, describe

        described = {**ATTRS[request.variable], **describe(**thickness)}
        request = dataclasses.replace(request, variable_attrs=described)
    elif request.variable not in request.product.segment_variables:
        raise GridError(
            f"variable={request.variable!r} is not stored in {request.product.name} granules, and grid_granules "
            "grids what the granules store. Compute it on opened segments (is2grid.open_granules) "
            "and grid those with .is2grid.to_ease2(variable=...); for thickness pass thickness={'snow': ...}."
        )
    max_bytes = None if store is not None else memory.budget(memory_budget)
    if max_bytes is not None and request.fixed_extent:
        assert request.window is not None and request.ordinals is not None
        gridding.check_size((len(request.ordinals), request.window.nrows, request.window.ncols), max_bytes)
    if credentials is not None or client is not None:
        credentials = as_credentials(credentials)
    if client is not None:  # on every worker, the ones that join later included
        from is2grid._workers import WorkerSetup

        client.register_plugin(WorkerSetup(credentials.portable() if credentials is not None else None))
    args = (request, beams, credentials, storage_options, errors, thickness)
    flight = _Flight.create(urls, in_flight, in_flight_bytes)
    if store is not None:
        return _grid_into_store(urls, args, client, progress, store, overwrite, flight)

    bar = _progress(len(urls), progress)
    total, skipped = _reduce(urls, args, client, bar, flight)
    if bar is not None:
        bar.close()
    left_out = {s.granule for s in skipped}
    gridded = [n for n in (_name_of(u) for u in urls) if n not in left_out]
    if gridded:
        gridding.warn_if_empty(total, request, f"{len(gridded)} granules' segments")
    result = gridding.gridded_dataset(total, request, {"hemisphere": request.hemisphere}, max_bytes=max_bytes)
    result = _with_provenance(result, gridded, request.product)
    return _with_skipped(result, skipped, len(urls), len(gridded))


def _with_skipped(result: xr.Dataset, skipped: list[Skipped], given: int, gridded: int) -> xr.Dataset:
    result.attrs["granules_gridded"] = gridded
    if skipped:
        result.attrs["granules_skipped"] = "\n".join(f"{s.granule}: {s.reason}" for s in skipped)
        listed = "; ".join(f"{s.granule} ({s.reason})" for s in skipped[:5])
        warnings.warn(
            f"{len(skipped)} of {given} granules skipped (errors='skip'): {listed}"
            f"{' ...' if len(skipped) > 5 else ''}. All are listed in the result's 'granules_skipped' attribute.",
            Is2gridWarning,
            stacklevel=3,
        )
    return result


@dataclass
class _Merged:
    """Sums of several granules and the ones skipped among them (what a worker's tree node returns)."""

    sums: CellSums
    skipped: list[Skipped]


def _merge_outcomes(outcomes: list[CellSums | Skipped | _Merged]) -> _Merged:
    sums = [o.sums if isinstance(o, _Merged) else o for o in outcomes if not isinstance(o, Skipped)]
    skipped = [
        s for o in outcomes if isinstance(o, Skipped | _Merged) for s in (o.skipped if isinstance(o, _Merged) else [o])
    ]
    return _Merged(reduction.combine(*sums), skipped)


def _reduce(urls, args, client, bar, flight: _Flight) -> tuple[CellSums, list[Skipped]]:
    """The total of all granules' sums, merged in the order given: here, or on the workers of ``client``."""
    if client is None:
        merged = _Merged(CellSums.empty(), [])
        pending: list[CellSums | Skipped] = []
        for _, outcome in _here(urls, args, flight):
            pending.append(outcome)
            if bar is not None:
                bar.update()
            if len(pending) >= 16:
                merged = _merge_outcomes([merged, *pending])
                pending = []
        merged = _merge_outcomes([merged, *pending])
        return merged.sums, merged.skipped
    from distributed import as_completed

    batches = windowed(urls, flight.batch(len(urls), client))
    futures = client.map(_batch_merged, batches, args=args, flight=flight, pure=False)
    fan_in = 8
    # a fixed tree over the batches in their order: the same total whichever worker finishes first
    nodes = list(futures)
    while len(nodes) > 1:
        nodes = [
            client.submit(_merge_outcomes, nodes[i : i + fan_in], pure=False) for i in range(0, len(nodes), fan_in)
        ]
    size_of = {f.key: len(b) for f, b in zip(futures, batches, strict=True)}
    for future in as_completed(futures, loop=client.loop):  # client need not be the default
        if bar is not None:
            bar.update(size_of[future.key])
    merged = nodes[0].result()
    return merged.sums, merged.skipped


@dataclass(frozen=True)
class _Flight:
    """How many granules one process reads at once, and the bytes they may hold."""

    granules: int
    nbytes: int

    @classmethod
    def create(cls, urls: list[Any], granules: int | None, nbytes: int | None) -> _Flight:
        if granules is not None and (not isinstance(granules, int) or granules < 1):
            raise GridError(f"in_flight={granules!r}: give a number of granules, 1 or more (1: one after another).")
        if nbytes is not None and nbytes <= 0:
            raise GridError(f"in_flight_bytes={nbytes!r}: give a number of bytes above 0.")
        remote = any(is_granule_record(u) or str(u).startswith(("s3://", "http://", "https://")) for u in urls)
        return cls(
            granules if granules is not None else default_granules(remote),
            int(nbytes) if nbytes is not None else default_bytes(),
        )

    def batch(self, n: int, client: Any, merged: bool = True) -> int:
        """Granules per task on a cluster (a worker runs one task per thread).

        With granules in flight, a task takes enough to keep them in flight (up to twice as many), but
        no more than an even share per worker thread. One at a time: where a task merges its granules'
        sums (``merged``), a few per task, so that fewer sums travel while every worker still gets several
        tasks to balance; where every granule's sums travel to the client anyway (a store), one per task,
        which balances best and hands the client each granule as soon as it is done.
        """
        workers = max(1, sum(client.nthreads().values()))  # a thread runs one task at a time
        if self.granules > 1:
            return max(1, min(2 * self.granules, -(-n // workers)))
        if not merged:
            return 1
        return max(1, min(4, -(-n // (3 * workers))))


def _here(urls, args, flight: _Flight):
    """(url, its sums or Skipped record) in the order given, ``flight.granules`` opened and fetched ahead."""
    request, beams, credentials, storage_options, errors, thickness = args

    def first(url) -> xr.Dataset:
        return _opened(url, request, beams, credentials, storage_options, thickness)

    def then(url, ds: xr.Dataset | None, error: BaseException | None) -> CellSums | Skipped:
        def compute() -> CellSums:
            if error is not None:
                raise error
            assert ds is not None
            return _sums_of(ds, request, thickness)

        return _settled(url, compute, errors)

    # one granule decoded and gridded at a time, here, as one after another: a second at once was 10-15 %
    # faster but held its arrays and the bytes fetched ahead to feed it, 1.5x the local run's peak (benchmarks.md)
    budget = ByteBudget(flight.nbytes, most=flight.granules)
    yield from in_order(first, then, urls, flight.granules, budget, discard=lambda ds: ds.close())


def _batch_merged(urls, args, flight: _Flight) -> _Merged:
    """On a worker: a batch of granules read with their next ones in flight, merged in order."""
    return _merge_outcomes([outcome for _, outcome in _here(urls, args, flight)])


def _batch_outcomes(urls, args, flight: _Flight) -> list[tuple[str, CellSums | Skipped]]:
    """On a worker: a batch of granules read with their next ones in flight, each one's sums by name."""
    return [(_name_of(url), outcome) for url, outcome in _here(urls, args, flight)]


def _grid_into_store(urls, args, client, progress: bool, path, overwrite: bool, flight: _Flight) -> xr.Dataset:
    """Granules in order of start time; each time bin written once no granule still to come reaches it.

    On a cluster, a store that is to be made (nothing to resume) takes every granule: their tasks go to the
    workers first, and the client makes the store while they grid (it would otherwise keep them waiting).
    """
    request = args[0]
    early = None
    if client is not None and GridStore.will_be_new(path, overwrite):
        everyone = _in_time_order(list(dict.fromkeys(_name_of(u) for u in urls)), request.product)[0]
        by_name = {_name_of(u): u for u in urls}
        early = (everyone, _submitted([by_name[n] for n in everyone], args, client, flight))
    try:
        store = GridStore(path, request, overwrite=overwrite)
    except BaseException:
        if early is not None:
            client.cancel(early[1])
        raise
    try:
        return _fill_store(urls, args, client, progress, store, flight, early)
    finally:
        store.release()  # a run that stops with an error leaves the store to the next writer


def _in_time_order(names: list[str], product: Product) -> tuple[list[str], dict[str, Any]]:
    """Names by the start time their names give; those that give none first (until they are in, no bin is final)."""
    starts = {n: product.start_time_from_name(n) for n in names}
    ordered = sorted(names, key=lambda n: (starts[n] is not None, starts[n] or np.datetime64(0, "s")))
    return ordered, starts


def _fill_store(urls, args, client, progress: bool, store: GridStore, flight: _Flight, early=None) -> xr.Dataset:
    names = {_name_of(u): u for u in urls}
    todo = [n for n in names if not store.is_complete(n)]
    copies = [f"{n} (in as {store.stored_as(n)})" for n in names if n not in todo and store.stored_as(n) != n]
    if copies:
        warnings.warn(
            f"{len(copies)} granule(s) are in {store.path} already under another name (the same granule by "
            f"product, time, RGT, cycle and region) and are not gridded again: {', '.join(copies[:5])}"
            f"{' ...' if len(copies) > 5 else ''}. To grid another revision instead, start a new store.",
            Is2gridWarning,
            stacklevel=4,
        )
    if progress and len(todo) < len(names):
        print(f"{len(names) - len(todo)} of {len(names)} granules are in {store.path} already; gridding the other "
              f"{len(todo)}.", file=sys.stderr)  # fmt: skip
    todo, starts = _in_time_order(todo, store.request.product)
    futures = None
    if early is not None:
        submitted, futures = early
        if submitted != todo:  # another writer made the store meanwhile: grid what it lacks
            client.cancel(futures)
            futures = None
    bar = _progress(len(todo), progress and bool(todo))
    skipped: list[Skipped] = []
    done: set[str] = set()
    frontier = 0
    for name, outcome in _outcomes([names[n] for n in todo], args, client, flight, futures):
        done.add(name)
        if isinstance(outcome, Skipped):
            skipped.append(outcome)
        else:
            store.add(name, outcome)
        while frontier < len(todo) and todo[frontier] in done:
            frontier += 1
        if frontier < len(todo):
            store.flush(starts[todo[frontier]])
        if bar is not None:
            bar.update()
            if skipped:
                bar.set_postfix(skipped=len(skipped))
    store.flush_all()
    if bar is not None:
        bar.close()
    included = store.included
    if included and not store.manifest["segments"]:
        gridding.warn_if_empty(CellSums.empty(), store.request, f"{len(included)} granules' segments")
    provenance = _with_provenance(xr.Dataset(), included, store.request.product).attrs
    attrs = {**provenance, "segments_gridded": int(store.manifest["segments"])}
    if store.manifest["t_min"] is not None:
        attrs["time_coverage_start"] = str(np.datetime64(store.manifest["t_min"], "ns"))
        attrs["time_coverage_end"] = str(np.datetime64(store.manifest["t_max"], "ns"))
    attrs["granules_gridded"] = len(included)
    if skipped:
        attrs["granules_skipped"] = "\n".join(f"{s.granule}: {s.reason}" for s in skipped)
    result = store.close(attrs)
    return _with_skipped(result, skipped, len(urls), len(included)) if skipped else result


def _submitted(urls, args, client, flight: _Flight) -> list[Any]:
    """The tasks of ``urls`` on the workers of ``client``: futures of their (name, sums or Skipped record)."""
    batches = windowed(urls, flight.batch(len(urls), client, merged=False))
    return client.map(_batch_outcomes, batches, args=args, flight=flight, pure=False)


def _outcomes(urls, args, client, flight: _Flight, futures=None):
    """(granule name, its sums or Skipped record): in order here, by batch as they finish on a cluster.

    ``futures``: the tasks of ``urls``, submitted already (:func:`_submitted`).
    """
    if client is None:
        for url, outcome in _here(urls, args, flight):
            yield _name_of(url), outcome
        return
    from distributed import as_completed

    if futures is None:
        futures = _submitted(urls, args, client, flight)
    try:
        for future in as_completed(futures, loop=client.loop):  # client need not be the default
            yield from future.result()
            future.release()
    finally:  # a run stopped early (an error, a kill) leaves no task behind
        client.cancel([f for f in futures if not f.done()])


def open_granules(
    paths: Sequence[str | os.PathLike | Any], *, chunks: Any = None, product: Any = None, **open_options: Any
) -> xr.Dataset:
    """Many granules as one ragged Dataset: their segments one after another, one trajectory per granule beam.

    ``row_size`` counts the segments of each (granule, beam) trajectory in order, so the CF ragged
    layout holds across granules; ``trajectory`` is labelled ``"<granule>/<beam>"`` and the
    ``granule`` coordinate (on ``trajectory``) names each one's file.

    Parameters
    ----------
    paths : sequence
        Granules, as for :func:`grid_granules`.
    chunks : optional
        As for ``xr.open_dataset``: ``{}`` keeps every variable a lazy dask array.
    product : {"ATL10", "ATL07"}, optional
        Which engine opens them; by default the product their names say (ATL10 for other names).
    **open_options
        More ``xr.open_dataset(..., engine="atl10")`` options (``beams``, ``variables``,
        ``credentials``, ``storage_options``...).

    Returns
    -------
    xarray.Dataset

    Examples
    --------
    >>> import tempfile
    >>> from is2grid import tutorial
    >>> paths = [tutorial.write_granule(tempfile.mkdtemp(), n_segments=100, rgt=r) for r in (10, 20)]
    >>> ds = open_granules(paths)
    >>> ds.sizes["trajectory"], int(ds.row_size.sum()) == ds.sizes["segment"]
    (6, True)
    """
    urls = _without_duplicates([p if is_granule_record(p) else os.fspath(p) for p in paths])
    if not urls:
        raise GridError("open_granules: no granules given.")
    chosen = product_of_granules(urls, product)
    parts = []
    for url in urls:
        ds = xr.open_dataset(url, engine=entrypoint(chosen.name), chunks=chunks, **open_options)
        name = _name_of(url)
        beams = [str(b) for b in ds["trajectory"].values]
        ds = ds.assign_coords(
            trajectory=[f"{name}/{b}" for b in beams],
            granule=("trajectory", [name] * len(beams), {"long_name": f"{chosen.name} granule of the trajectory"}),
        )
        parts.append(ds)
    # each variable lies along one dimension: concatenate along it, keep what agrees of the attributes
    along: dict[str, Any] = {"data_vars": "all", "coords": "minimal", "compat": "override", "join": "outer"}
    segments = xr.concat(
        [p.drop_dims("trajectory") for p in parts], dim="segment", combine_attrs="drop_conflicts", **along
    )
    trajectories = xr.concat(
        [p[["row_size"]] for p in parts], dim="trajectory", combine_attrs="drop_conflicts", **along
    )
    out = xr.merge([segments, trajectories], combine_attrs="drop_conflicts")
    names = [_name_of(u) for u in urls]
    out.attrs.update(granules=len(names), granule_first=names[0], granule_last=names[-1])
    out.attrs.pop("granule", None)
    out.attrs.pop("source_file", None)
    return out


def _with_provenance(result: xr.Dataset, names: list[str], product: Product) -> xr.Dataset:
    """Which granules went in: a bounded summary in the attributes, the whole list as a ``granule`` coordinate.

    The checksum is of the sorted names, one per line, so two results can be told apart by attributes alone.
    """
    import hashlib

    ordered = sorted(names, key=products.granule_identity)
    result = result.assign_coords(granule=("granule", ordered, {"long_name": f"{product.name} granule gridded"}))
    result.attrs.update(
        granule_count=len(ordered),
        granule_first=ordered[0] if ordered else "",
        granule_last=ordered[-1] if ordered else "",
        granule_list_sha256=hashlib.sha256("\n".join(ordered).encode()).hexdigest(),
    )
    return result


def _progress(total: int, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="gridding granules", unit="granule")
