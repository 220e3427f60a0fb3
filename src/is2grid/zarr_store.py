"""A Zarr v3 store that a long run fills time bin by time bin, and that a rerun resumes.

Layout: the CF variables of a gridded result (``n_segments`` int32, the statistics float32,
``time``/``time_bounds``, ``x``/``y``, ``crs``), chunked one time bin by ``TILE x TILE`` cells;
tiles without data are never written. A small Zarr group, ``is2grid_manifest``, holds the
manifest in its attributes: the options, how many time bins are final, and how many bytes of its
granule log (``granules.jsonl`` beside it, one line per granule that became included or complete)
are committed. The log is appended to, so a commit costs the same at the ten-thousandth granule as
at the first.

Commit protocol: data first, then the new log lines, then the manifest, replaced atomically. The
manifest is the truth: bins past its count and log lines past its length are cut off when the store
is reopened, so a run stopped at any point leaves a store that reopens consistently, and a rerun with
the same granules completes it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from is2grid import gridding, reduction
from is2grid._zarr_chunks import ChunkWriter, replace_file
from is2grid.errors import OutputError
from is2grid.reduction import STATISTICS, CellSums
from is2grid.request import GridRequest

__all__ = ["MANIFEST_GROUP", "TILE", "GridStore", "read_manifest"]

#: cells per side of a spatial chunk
TILE = 512
#: the Zarr group whose attributes hold the manifest
MANIFEST_GROUP = "is2grid_manifest"
#: the granule log, in the manifest group's folder
GRANULE_LOG = "granules.jsonl"
_TIME_CHUNK = 1024


class GridStore:
    """A Zarr v3 store of gridded statistics, written as time bins become final.

    Parameters
    ----------
    path : str or os.PathLike
        The store (a folder). An existing store made with the same options is resumed; with other
        options it is refused unless ``overwrite``.
    request : GridRequest
        What is gridded. Without a fixed window the store spans the whole grid.
    overwrite : bool
        Replace an existing store.

    Examples
    --------
    >>> import tempfile
    >>> from is2grid.request import GridRequest
    >>> request = GridRequest.create("ease2", res=100000, hemisphere="south")
    >>> store = GridStore(tempfile.mkdtemp() + "/out.zarr", request)
    >>> store.written, store.is_complete("ATL10-02_20190915000000_12340401_006_01.h5")
    (0, False)
    """

    def __init__(self, path: str | os.PathLike, request: GridRequest, *, overwrite: bool = False):
        self.path = Path(path)
        self.request = dataclasses.replace(request, window=request.target)
        self.window = self.request.target
        self.has_time = request.bins.freq is not None
        options = _options(self.request)
        # granules added and not yet complete, with their last time bin (None: no data)
        self._open: dict[str, int | None] = {}
        self._included: set[str] = set()
        self._complete: set[str] = set()
        if (self.path / "zarr.json").exists() and not overwrite:
            self.manifest = self._reopen(options)
        else:
            if self.path.exists():
                if not overwrite:
                    raise OutputError(f"{self.path}: exists and is not a Zarr store. Choose another name.")
                shutil.rmtree(self.path) if self.path.is_dir() else self.path.unlink()
            self.manifest = {
                "options": options,
                "first_ordinal": None,
                "written": 0,
                "granule_log_bytes": 0,
                "segments": 0,
                "t_min": None,
                "t_max": None,
            }
        if not (self.path / "zarr.json").exists():
            self._create()
        import zarr

        self._group = zarr.open_group(self.path, mode="r+", zarr_format=3, use_consolidated=False)
        self._arrays: dict[str, Any] = dict(self._group.arrays())
        self._writers = {name: ChunkWriter(self._arrays[name]) for name in STATISTICS}
        self._pending = CellSums.empty()
        self._batch: list[CellSums] = []

    # -- what is in ---------------------------------------------------------------------------------

    @property
    def written(self) -> int:
        """Time bins final in the store."""
        return int(self.manifest["written"])

    @property
    def cut(self) -> int | None:
        """The ordinal of the first time bin not yet written (None before the first write)."""
        first = self.manifest["first_ordinal"]
        return None if first is None else int(first) + self.written

    def is_complete(self, granule: str) -> bool:
        """Whether everything ``granule`` contributes is in the store already (a rerun skips it)."""
        return granule in self._complete

    @property
    def included(self) -> list[str]:
        """The granules whose data is in the store (as of the last commit), sorted."""
        return sorted(self._included)

    # -- adding -------------------------------------------------------------------------------------

    def add(self, granule: str, sums: CellSums) -> None:
        """Take one granule's sums: bins already written are merged at once, the rest wait in memory."""
        sums = self._in_time_range(sums)
        ordinal = self.window.split_keys(sums.keys)[0]
        self._open[granule] = int(ordinal[-1]) if ordinal.size else None
        if sums.t_min is not None and sums.keys.size:
            t_min, t_max = self.manifest["t_min"], self.manifest["t_max"]
            self.manifest["t_min"] = sums.t_min if t_min is None else min(t_min, sums.t_min)
            self.manifest["t_max"] = sums.t_max if t_max is None else max(t_max, sums.t_max)
        cut = self.cut
        if cut is not None:
            written, sums = reduction.split_at(sums, self._key(cut))
            if written.keys.size and granule not in self._included:
                # a bin already final gets more data (a granule added in a later run): merge it now
                with _signals_deferred():
                    self._merge(written)
                    self._commit()
        self._batch.append(sums)
        if len(self._batch) >= 16:
            self._pending = reduction.combine(self._pending, *self._batch)
            self._batch = []

    def flush(self, frontier: np.datetime64 | None) -> None:
        """Write every time bin that ends at or before ``frontier`` (no granule still to come reaches it)."""
        if not self.has_time or frontier is None:
            return
        self._write_until(int(self.request.bins.ordinals(np.array([frontier]))[0]))

    def flush_all(self) -> None:
        """Write every bin still open (the run is over: nothing more will come)."""
        self._pending = reduction.combine(self._pending, *self._batch)
        self._batch = []
        if not self.has_time:
            with _signals_deferred():
                self.manifest["segments"] += int(self._pending.count.sum())
                self._write_bin(None, self._pending, merge=self.written > 0)
                self.manifest["first_ordinal"], self.manifest["written"] = 0, 1
                self._pending = CellSums.empty()
                self._commit()
            return
        last = self._last_ordinal()
        if last is not None:
            self._write_until(last + 1)
        else:
            self._commit()

    def close(self, attrs: dict[str, Any] | None = None) -> xr.Dataset:
        """Write ``attrs`` and consolidated metadata after :meth:`flush_all`; the store, opened lazily.

        Consolidated metadata (one read to open the store) is written only here, at the end of a
        run, and removed when a run starts, so it never describes a store that is still changing.
        """
        import warnings

        import zarr

        attrs = dict(attrs or {})
        if "granules_skipped" not in attrs and "granules_skipped" in self._group.attrs:
            del self._group.attrs["granules_skipped"]  # a rerun that read them all
        self._group.attrs.update(attrs)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "consolidated metadata is not part of the v3 spec" yet
            zarr.consolidate_metadata(self.path, zarr_format=3)
        return self.dataset()

    def dataset(self) -> xr.Dataset:
        """The store as a lazy Dataset."""
        return xr.open_zarr(self.path, consolidated=None)

    # -- internals ----------------------------------------------------------------------------------

    def _key(self, ordinal: int) -> int:
        return int(self.window.keys(np.array([ordinal]), 0, 0)[0])

    def _in_time_range(self, sums: CellSums) -> CellSums:
        ordinals = self.request.ordinals
        if not self.has_time or ordinals is None or not sums.keys.size:
            return sums
        _, inside = reduction.split_at(sums, self._key(int(ordinals[0])))
        inside, _ = reduction.split_at(inside, self._key(int(ordinals[-1]) + 1))
        return inside

    def _last_ordinal(self) -> int | None:
        ordinals = self.request.ordinals
        if ordinals is not None and self.has_time:
            return int(ordinals[-1])
        keys = self._pending.keys
        return int(self.window.split_keys(keys[-1:])[0][0]) if keys.size else None

    def _write_until(self, end: int) -> None:
        """Append the bins from the cut up to ``end`` (exclusive), one at a time, then commit."""
        self._pending = reduction.combine(self._pending, *self._batch)
        self._batch = []
        if self.manifest["first_ordinal"] is None:
            # the store starts at the first bin with data once every granule that could come before is in
            ordinals = self.request.ordinals
            if ordinals is not None:
                first = int(ordinals[0])
            elif self._pending.keys.size:
                first = int(self.window.split_keys(self._pending.keys[:1])[0][0])
            else:
                return
            if end <= first:
                return
            self.manifest["first_ordinal"] = first
        start = int(self.cut)  # type: ignore[arg-type]
        if end <= start:
            return
        with _signals_deferred():
            first = int(self.manifest["first_ordinal"])
            self._grow_time(end - first)
            for ordinal in range(start, end):
                part, self._pending = reduction.split_at(self._pending, self._key(ordinal + 1))
                self.manifest["segments"] += int(part.count.sum())
                self._write_bin(ordinal - first, part, merge=False)
            self.manifest["written"] = end - first
            self._commit()

    def _grow_time(self, n: int) -> None:
        first = int(self.manifest["first_ordinal"])
        old = self._arrays["time"].shape[0]
        for name in ("time", "time_bounds", *STATISTICS):
            array = self._arrays[name]
            array.resize((n, *array.shape[1:]))
        starts = self.request.bins.starts(np.arange(first + old, first + n + 1))
        seconds = (starts - np.datetime64(gridding.TIME_UNITS.split("since ")[1])) / np.timedelta64(1, "s")
        self._arrays["time"][old:n] = seconds[:-1]
        self._arrays["time_bounds"][old:n] = np.stack([seconds[:-1], seconds[1:]], axis=1)

    def _write_bin(self, index: int | None, sums: CellSums, *, merge: bool) -> None:
        """Write the tiles of one time bin that hold data (``index`` None: a store without time)."""
        window = self.window
        if not sums.keys.size:
            return
        _, row, col = window.split_keys(sums.keys)
        r, c = row - window.row0, col - window.col0
        tiles = (r // TILE) * (window.ncols // TILE + 1) + c // TILE
        order = np.argsort(tiles, kind="stable")
        bounds = np.flatnonzero(np.diff(tiles[order])) + 1
        for cells in np.split(order, bounds):
            r0, c0 = (int(r[cells[0]]) // TILE) * TILE, (int(c[cells[0]]) // TILE) * TILE
            r1, c1 = min(r0 + TILE, window.nrows), min(c0 + TILE, window.ncols)
            where = (slice(r0, r1), slice(c0, c1)) if index is None else (index, slice(r0, r1), slice(c0, c1))
            tile_sums = CellSums(
                sums.keys[cells],
                sums.count[cells],
                sums.sum_length[cells],
                sums.sum_length_fb[cells],
                sums.sum_length_fb2[cells],
            )
            if merge:
                tile_sums = reduction.combine(self._stored_sums(where, row0=r0, col0=c0), tile_sums)
            _, trow, tcol = window.split_keys(tile_sums.keys)
            local = (trow - window.row0 - r0, tcol - window.col0 - c0)
            stats = reduction.statistics(
                tile_sums.count,
                tile_sums.sum_length,
                tile_sums.sum_length_fb,
                tile_sums.sum_length_fb2,
                self.request.min_segments,
            )
            for name, values in zip(STATISTICS, stats, strict=True):
                dense = (
                    np.zeros((r1 - r0, c1 - c0), np.int32)
                    if name == "n_segments"
                    else np.full((r1 - r0, c1 - c0), np.nan, np.float32)
                )
                dense[local] = values
                writer = self._writers[name]
                spatial = (r0 // writer.array.chunks[-2], c0 // writer.array.chunks[-1])
                empty = name != "n_segments" and bool(np.isnan(values).all())
                writer.write(spatial if index is None else (index, *spatial), dense, empty=empty)

    def _stored_sums(self, where, *, row0: int, col0: int) -> CellSums:
        stored = [np.asarray(self._arrays[name][where]) for name in STATISTICS]
        rows, cols = np.nonzero(stored[0] > 0)
        ordinal = 0 if len(where) == 2 else int(self.manifest["first_ordinal"]) + where[0]
        keys = self.window.keys(
            np.full(rows.size, ordinal), rows + row0 + self.window.row0, cols + col0 + self.window.col0
        )
        return reduction.sums_of_statistics(keys, *(s[rows, cols] for s in stored))

    def _merge(self, sums: CellSums) -> None:
        if self.request.min_segments > 1:
            raise OutputError(
                f"{self.path}: granules new to this store hold data of time bins it has written already; with "
                f"min_segments={self.request.min_segments} the stored statistics of sparse cells are NaN and "
                "cannot be merged exactly. Grid all granules in one run, or into a new store."
            )
        first = int(self.manifest["first_ordinal"])
        ordinal = self.window.split_keys(sums.keys)[0]
        if ordinal[0] < first:
            raise OutputError(
                f"{self.path}: the store starts at {self.request.bins.starts(np.array([first]))[0]}, but new "
                "granules hold earlier data; a Zarr store cannot grow backwards in time. Grid them into a new "
                "store, or give time_range= covering the whole period when creating it."
            )
        for o in np.unique(ordinal):
            part = reduction.split_at(reduction.split_at(sums, self._key(int(o)))[1], self._key(int(o) + 1))[0]
            self.manifest["segments"] += int(part.count.sum())
            self._write_bin(None if not self.has_time else int(o) - first, part, merge=True)

    def _create(self) -> None:
        template_request = dataclasses.replace(self.request, time_range=None)
        template = gridding.gridded_dataset(CellSums.empty(), template_request, {"hemisphere": self.request.hemisphere})
        ny, nx = self.window.nrows, self.window.ncols
        spatial = (min(TILE, max(ny, 1)), min(TILE, max(nx, 1)))
        chunks = spatial if not self.has_time else (1, *spatial)
        encoding: dict[str, dict[str, Any]] = {
            "n_segments": {"dtype": "int32", "chunks": chunks, "fill_value": 0},
            **{n: {"dtype": "float32", "chunks": chunks, "_FillValue": np.float32(np.nan)} for n in STATISTICS[1:]},
        }
        if self.has_time:
            for name, chunk in (("time", (_TIME_CHUNK,)), ("time_bounds", (_TIME_CHUNK, 2))):
                encoding[name] = {**template[name].encoding, "chunks": chunk}
        template.attrs.update(
            storage="Zarr v3 written by is2grid: one chunk per time bin and tile; tiles without data are not stored",
            is2grid_options=json.dumps(self.manifest["options"], sort_keys=True),
        )
        template.to_zarr(self.path, mode="w", zarr_format=3, consolidated=False, encoding=encoding)
        self._commit()

    def _reopen(self, options: dict[str, Any]) -> dict[str, Any]:
        manifest = _load_manifest(self.path)
        if manifest["options"] != options:
            changed = sorted(k for k in options if manifest["options"].get(k) != options[k])
            raise OutputError(
                f"{self.path}: made with other options ({', '.join(changed)} differ), so a rerun cannot resume it. "
                "Use the same options, another store, or overwrite=True (--overwrite)."
            )
        import zarr

        self._included, self._complete, manifest["granule_log_bytes"] = _read_log(self.path, manifest, truncate=True)
        if "included" in manifest:  # a store of is2grid 0.1, which listed the granules in the manifest
            entries = [("included", n) for n in sorted(self._included)]
            text = _log_text(entries + [("complete", n) for n in sorted(self._complete)])
            (self.path / MANIFEST_GROUP / GRANULE_LOG).write_bytes(text)  # committed with the next manifest
            manifest["granule_log_bytes"] = len(text)
            del manifest["included"], manifest["complete"]
        _replace_json(
            self.path / "zarr.json", lambda meta: {k: v for k, v in meta.items() if k != "consolidated_metadata"}
        )
        group = zarr.open_group(self.path, mode="r+", zarr_format=3, use_consolidated=False)
        arrays: dict[str, Any] = dict(group.arrays())
        written = int(manifest["written"]) if self.has_time else 0
        for name in ("time", "time_bounds", *STATISTICS) if self.has_time else ():
            array = arrays[name]
            if array.shape[0] != written:  # bins of a run stopped before its commit: written again
                array.resize((written, *array.shape[1:]))
        return manifest

    def _commit(self) -> None:
        """Record the state: new granule log lines appended, then the manifest replaced (atomic).

        Every granule added so far is included (its data in bins before the cut is written); those
        whose last bin is before the cut are complete, and leave the open set.
        """
        cut = self.cut
        entries = []
        for name, last in list(self._open.items()):
            if name not in self._included:
                self._included.add(name)
                entries.append(("included", name))
            if last is None or (cut is not None and last < cut):
                if name not in self._complete:
                    self._complete.add(name)
                    entries.append(("complete", name))
                del self._open[name]
        folder = self.path / MANIFEST_GROUP
        folder.mkdir(parents=True, exist_ok=True)
        if entries:
            with open(folder / GRANULE_LOG, "ab") as log:
                log.write(_log_text(entries))
                self.manifest["granule_log_bytes"] = log.tell()
        node = {"zarr_format": 3, "node_type": "group", "attributes": {MANIFEST_GROUP: self.manifest}}
        _replace_json(folder / "zarr.json", lambda _: node)


def _replace_json(path: Path, change) -> None:
    """Rewrite a JSON file atomically: the new text goes to a temporary file renamed over the old one."""
    old = json.loads(path.read_text()) if path.exists() else {}
    replace_file(path, json.dumps(change(old)).encode())


def read_manifest(path: str | os.PathLike) -> dict[str, Any]:
    """The committed state of the store at ``path``: its manifest, with the ``included`` and ``complete`` granules.

    Examples
    --------
    >>> import tempfile
    >>> from is2grid.request import GridRequest
    >>> request = GridRequest.create("ease2", res=100000, hemisphere="south")
    >>> path = GridStore(tempfile.mkdtemp() + "/out.zarr", request).path
    >>> state = read_manifest(path)
    >>> state["written"], state["included"], state["complete"]
    (0, [], [])
    """
    path = Path(path)
    manifest = _load_manifest(path)
    included, complete, _ = _read_log(path, manifest, truncate=False)
    return {**manifest, "included": sorted(included), "complete": sorted(complete)}


def _load_manifest(path: Path) -> dict[str, Any]:
    try:
        return json.loads((path / MANIFEST_GROUP / "zarr.json").read_text())["attributes"][MANIFEST_GROUP]
    except (OSError, KeyError, ValueError) as err:
        raise OutputError(
            f"{path}: a Zarr store without an is2grid manifest; is2grid does not write into other "
            "stores. Choose another name, or pass overwrite=True (--overwrite) to replace it."
        ) from err


def _log_text(entries: list[tuple[str, str]]) -> bytes:
    """Granule log lines for (state, granule) pairs, state "included" or "complete"; read by :func:`_read_log`."""
    return "".join(json.dumps({state: name}) + "\n" for state, name in entries).encode()


def _read_log(path: Path, manifest: dict[str, Any], *, truncate: bool) -> tuple[set[str], set[str], int]:
    """The included and complete granules of the committed log, and its length; lines past it are cut off."""
    included, complete = set(manifest.get("included", ())), set(manifest.get("complete", ()))
    committed = int(manifest.get("granule_log_bytes", 0))
    log = path / MANIFEST_GROUP / GRANULE_LOG
    if committed:
        size = log.stat().st_size if log.exists() else 0
        if size < committed:
            raise OutputError(
                f"{path}: its granule log ({log.name}) holds {size} bytes where the manifest has committed "
                f"{committed}; the store was changed outside is2grid, so what it holds is unknown. Grid into a "
                "new store, or pass overwrite=True (--overwrite) to replace it."
            )
        with open(log, "rb") as f:
            text = f.read(committed).decode()
        for line in text.splitlines():
            entry = json.loads(line)
            if "included" in entry:
                included.add(entry["included"])
            else:
                complete.add(entry["complete"])
    if truncate and log.exists() and log.stat().st_size > committed:
        with open(log, "r+b") as f:  # lines of a commit that did not finish
            f.truncate(committed)
    return included, complete, committed


def _options(request: GridRequest) -> dict[str, Any]:
    """What must match for a store to be resumed: the grid, the bins, the filters."""
    window = request.target
    return {
        "grid": window.name,
        "crs": str(window.crs),
        "window": [int(window.row0), int(window.col0), int(window.nrows), int(window.ncols)],
        "freq": request.bins.freq,
        "time_range": None if request.time_range is None else [str(t) for t in request.time_range],
        "filters": request.describe(),
        "min_segments": int(request.min_segments),
    }


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
    """SIGINT/SIGTERM wait until a commit is whole, then act as they would have (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    watched = (signal.SIGINT, signal.SIGTERM)
    previous = {s: signal.signal(s, lambda signum, frame: pending.append(signum)) for s in watched}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        for signum in pending[:1]:
            signal.raise_signal(signum)
