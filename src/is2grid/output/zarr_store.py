"""A Zarr v3 store that a long run fills time bin by time bin, and that a rerun resumes.

Layout: the CF variables of a gridded result (``n_segments`` int32, the statistics float32,
``time``/``time_bounds``, ``x``/``y``, ``crs``), chunked one time bin by ``TILE x TILE`` cells;
tiles without data are never written. A small Zarr group, ``is2grid_manifest``, holds the
manifest in its attributes: the options, how many time bins are final, and how many bytes of its
granule log (``granules.jsonl`` beside it, one line per granule that became included or complete)
are committed. The log is appended to, so a commit costs the same at the ten-thousandth granule as
at the first.

Commit protocol (one transaction per commit; :func:`_step` names each point a process may die at):

1. an undo journal is begun (``is2grid_manifest/journal/``, holding the commit count it starts from);
2. before a chunk file is written or removed, the journal records it: the old file is kept by a hard
   link (no copy), a chunk that did not exist is listed to be removed;
3. the chunks are written in place, the time axis grown;
4. the new granule log lines are appended;
5. the manifest (with the commit count plus one, and the chunk files each bin holds) replaces the old
   one atomically: this is the commit;
6. the journal is removed.

The manifest is the truth. Reopening a store rolls back a journal whose commit did not happen (every
chunk back as it was, new chunks removed), cuts the time axis and the granule log back to what the
manifest says, and checks that every chunk file the manifest counts is there. So a process killed at
any point leaves a store that a rerun completes to the same bytes as an uninterrupted run. One writer
at a time: a writer holds an exclusive lock (``is2grid_manifest/lock``, an ``flock`` that the kernel
releases when the process dies, holding the writer's host and pid for the error a second writer gets).
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

from is2grid.errors import OutputError, StoreInUseError
from is2grid.grid import gridding, reduction
from is2grid.grid.reduction import CellSums
from is2grid.grid.request import GridRequest
from is2grid.output.zarr_chunks import ChunkWriter, replace_file
from is2grid.products import ATL10, granule_identity

__all__ = ["MANIFEST_GROUP", "TILE", "GridStore", "read_manifest"]

#: cells per side of a spatial chunk
TILE = 512
#: the Zarr group whose attributes hold the manifest
MANIFEST_GROUP = "is2grid_manifest"
#: the granule log, in the manifest group's folder
GRANULE_LOG = "granules.jsonl"
#: the undo journal of a commit under way, in the manifest group's folder
JOURNAL = "journal"
#: the writer's lock file, in the manifest group's folder
LOCK = "lock"
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
    >>> from is2grid.grid.request import GridRequest
    >>> request = GridRequest.create("ease2", res=100000, hemisphere="south")
    >>> store = GridStore(tempfile.mkdtemp() + "/out.zarr", request)
    >>> store.written, store.is_complete("ATL10-02_20190915000000_12340401_006_01.h5")
    (0, False)
    >>> store.release()  # one writer at a time: the lock is held until close() or release()
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
        self._ids: dict[str, str] = {}  # identity -> the name a granule is in the store under
        self._journal: _Journal | None = None
        self._check_target(overwrite)
        with _os_errors(self.path):
            self._lock = _Lock(self.path / MANIFEST_GROUP / LOCK)
        try:
            self._check_target(overwrite)  # again: another writer may have made the store meanwhile
            if _state(self.path) == "store" and not overwrite:
                self.manifest = self._reopen(options)
            else:
                _clear(self.path, keep=self._lock.path)
                self.manifest = {
                    "options": options,
                    "first_ordinal": None,
                    "written": 0,
                    "granule_log_bytes": 0,
                    "segments": 0,
                    "t_min": None,
                    "t_max": None,
                    "commits": 0,
                    "tiles": [],
                }
                self._create()
            import zarr

            self._group = zarr.open_group(self.path, mode="r+", zarr_format=3, use_consolidated=False)
        except BaseException:
            self._lock.release()
            raise
        self._arrays: dict[str, Any] = dict(self._group.arrays())
        self._writers = {name: ChunkWriter(self._arrays[name]) for name in self.request.names}
        self._pending = CellSums.empty()
        self._batch: list[CellSums] = []

    @staticmethod
    def will_be_new(path: str | os.PathLike, overwrite: bool = False) -> bool:
        """Whether opening a store at ``path`` would make a new one (nothing to resume), as far as can be seen now.

        Another writer may still make it meanwhile: what the opened store holds is what counts.
        """
        path = Path(path)
        return path.parent.is_dir() and (overwrite or _state(path) == "new")

    def _check_target(self, overwrite: bool) -> None:
        if not self.path.parent.is_dir():
            raise OutputError(
                f"{self.path.parent}: no such folder for the store {self.path.name}. Create it first "
                f"(mkdir -p {self.path.parent}) or choose another path."
            )
        state = _state(self.path)
        if state == "other" and not overwrite:
            raise OutputError(f"{self.path}: exists and is not a Zarr store. Choose another name.")
        if state == "store" and not overwrite:
            _load_manifest(self.path)  # not an is2grid store: refused before anything is written into it

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
        """Whether everything ``granule`` contributes is in the store already (a rerun skips it).

        Granules are known by their identity (:func:`is2grid.products.granule_identity`): another
        revision or a renamed copy of a granule in the store is in the store.
        """
        stored = self._ids.get(granule_identity(granule))
        return stored is not None and stored in self._complete

    def stored_as(self, granule: str) -> str | None:
        """The name under which the store holds ``granule`` (or another copy of it), None if it does not."""
        return self._ids.get(granule_identity(granule))

    @property
    def included(self) -> list[str]:
        """The granules whose data is in the store (as of the last commit), sorted."""
        return sorted(self._included)

    def release(self) -> None:
        """Give up the writer's lock (also done by :meth:`close`, and by the kernel if the process dies)."""
        self._lock.release()

    # -- adding -------------------------------------------------------------------------------------

    def add(self, granule: str, sums: CellSums) -> None:
        """Take one granule's sums: bins already written are merged at once, the rest wait in memory."""
        sums = self._in_time_range(sums)
        ordinal = self.window.split_keys(sums.keys)[0]
        known = self.stored_as(granule)
        name = known if known is not None else granule
        self._open[name] = int(ordinal[-1]) if ordinal.size else None
        if sums.t_min is not None and sums.keys.size:
            t_min, t_max = self.manifest["t_min"], self.manifest["t_max"]
            self.manifest["t_min"] = sums.t_min if t_min is None else min(t_min, sums.t_min)
            self.manifest["t_max"] = sums.t_max if t_max is None else max(t_max, sums.t_max)
        cut = self.cut
        if cut is not None:
            written, sums = reduction.split_at(sums, self._key(cut))
            if written.keys.size and name not in self._included:
                # a bin already final gets more data (a granule added in a later run): merge it now
                with self._transaction():
                    self._merge(written)
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
            with self._transaction():
                self.manifest["segments"] += int(self._pending.count.sum())
                self._write_bin(None, self._pending, merge=self.written > 0)
                self.manifest["first_ordinal"], self.manifest["written"] = 0, 1
                self._pending = CellSums.empty()
            return
        last = self._last_ordinal()
        if last is not None:
            self._write_until(last + 1)
        else:
            with self._transaction():
                pass

    def close(self, attrs: dict[str, Any] | None = None) -> xr.Dataset:
        """Write ``attrs`` and consolidated metadata after :meth:`flush_all`, release the lock; the store, lazily.

        Consolidated metadata (one read to open the store) is written only here, at the end of a
        run, and removed when a run starts, so it never describes a store that is still changing.
        """
        import warnings

        import zarr

        try:
            attrs = dict(attrs or {})
            if "granules_skipped" not in attrs and "granules_skipped" in self._group.attrs:
                del self._group.attrs["granules_skipped"]  # a rerun that read them all
            with _os_errors(self.path):
                self._group.attrs.update(attrs)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UserWarning)  # "consolidated metadata is not part of the v3 spec"
                    zarr.consolidate_metadata(self.path, zarr_format=3)
        finally:
            self.release()
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
        with self._transaction():
            first = int(self.manifest["first_ordinal"])
            self._grow_time(end - first)
            for ordinal in range(start, end):
                part, self._pending = reduction.split_at(self._pending, self._key(ordinal + 1))
                self.manifest["segments"] += int(part.count.sum())
                self._write_bin(ordinal - first, part, merge=False)
            self.manifest["written"] = end - first

    def _grow_time(self, n: int) -> None:
        first = int(self.manifest["first_ordinal"])
        old = self._arrays["time"].shape[0]
        for name in ("time", "time_bounds", *self.request.names):
            array = self._arrays[name]
            array.resize((n, *array.shape[1:]))
        starts = self.request.bins.starts(np.arange(first + old, first + n + 1))
        seconds = (starts - np.datetime64(gridding.TIME_UNITS.split("since ")[1])) / np.timedelta64(1, "s")
        for name in ("time", "time_bounds"):  # chunks holding committed bins are rewritten with the same values
            for chunk in range(old // _TIME_CHUNK, (n - 1) // _TIME_CHUNK + 1):
                self._protect(name, (chunk,) if name == "time" else (chunk, 0))
        self._arrays["time"][old:n] = seconds[:-1]
        self._arrays["time_bounds"][old:n] = np.stack([seconds[:-1], seconds[1:]], axis=1)
        _step("time axis grown")

    def _write_bin(self, index: int | None, sums: CellSums, *, merge: bool) -> None:
        """Write the tiles of one time bin that hold data (``index`` None: a store without time)."""
        window = self.window
        tiles_of_bin = self.manifest.setdefault("tiles", [])
        slot = 0 if index is None else index
        while len(tiles_of_bin) <= slot:
            tiles_of_bin.append([0] * len(self.request.names))
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
                sums.sum_length_h[cells],
                sums.sum_length_h2[cells],
            )
            if merge:
                tile_sums = reduction.combine(self._stored_sums(where, row0=r0, col0=c0), tile_sums)
            _, trow, tcol = window.split_keys(tile_sums.keys)
            local = (trow - window.row0 - r0, tcol - window.col0 - c0)
            stats = reduction.statistics(
                tile_sums.count,
                tile_sums.sum_length,
                tile_sums.sum_length_h,
                tile_sums.sum_length_h2,
                self.request.min_segments,
            )
            for k, (name, values) in enumerate(zip(self.request.names, stats, strict=True)):
                shape = (r1 - r0, c1 - c0)
                dense = np.zeros(shape, np.int32) if k == 0 else np.full(shape, np.nan, np.float32)
                dense[local] = values
                writer = self._writers[name]
                spatial = (r0 // writer.array.chunks[-2], c0 // writer.array.chunks[-1])
                chunk = spatial if index is None else (index, *spatial)
                empty = k > 0 and bool(np.isnan(values).all())
                existed = self._protect(name, chunk)
                writer.write(chunk, dense, empty=empty)
                tiles_of_bin[slot][k] += int(not empty) - int(existed)
                _step("chunk written")

    def _stored_sums(self, where, *, row0: int, col0: int) -> CellSums:
        stored = [np.asarray(self._arrays[name][where]) for name in self.request.names]
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
        count, *statistics = self.request.names
        encoding: dict[str, dict[str, Any]] = {
            count: {"dtype": "int32", "chunks": chunks, "fill_value": 0},
            **{n: {"dtype": "float32", "chunks": chunks, "_FillValue": np.float32(np.nan)} for n in statistics},
        }
        if self.has_time:
            for name, chunk in (("time", (_TIME_CHUNK,)), ("time_bounds", (_TIME_CHUNK, 2))):
                encoding[name] = {**template[name].encoding, "chunks": chunk}
        template.attrs.update(
            storage="Zarr v3 written by is2grid: one chunk per time bin and tile; tiles without data are not stored",
            is2grid_options=json.dumps(self.manifest["options"], sort_keys=True),
        )
        import warnings

        with _os_errors(self.path), warnings.catch_warnings():
            # mode "a" into the emptied folder ("w" would also remove the lock file held there), where zarr
            # finds the manifest group's folder without its metadata yet
            warnings.filterwarnings("ignore", "Object at .* is not recognized", UserWarning)
            template.to_zarr(self.path, mode="a", zarr_format=3, consolidated=False, encoding=encoding)
            self._write_manifest()

    def _reopen(self, options: dict[str, Any]) -> dict[str, Any]:
        manifest = _load_manifest(self.path)
        # stores of is2grid before the product seam gridded ATL10 freeboard and did not say so
        made = {"product": ATL10.name, "variable": ATL10.variable, **manifest["options"]}
        if made != options:
            changed = sorted(k for k in options if made.get(k) != options[k])
            raise OutputError(
                f"{self.path}: made with other options ({', '.join(changed)} differ), so a rerun cannot resume it. "
                "Use the same options, another store, or overwrite=True (--overwrite) to replace it."
            )
        import zarr

        with _os_errors(self.path):
            _Journal.recover(self.path / MANIFEST_GROUP / JOURNAL, int(manifest.get("commits", 0)))
            self._included, self._complete, manifest["granule_log_bytes"] = _read_log(
                self.path, manifest, truncate=True
            )
            self._ids = {granule_identity(n): n for n in sorted(self._included)}
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
            for name in ("time", "time_bounds", *self.request.names) if self.has_time else ():
                array = arrays[name]
                if array.shape[0] != written:  # bins of a run stopped before its commit: written again
                    array.resize((written, *array.shape[1:]))
        _check_tiles(self.path, manifest, self.request)
        return manifest

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """One commit: chunk writes journaled for undo, then the log and the manifest, then the journal gone.

        SIGINT/SIGTERM wait until the commit is whole; an exception inside leaves the journal for the
        next opening of the store to roll back.
        """
        with _signals_deferred(), _os_errors(self.path):
            journal = _Journal.begin(self.path / MANIFEST_GROUP / JOURNAL, int(self.manifest.get("commits", 0)))
            self._journal = journal
            _step("journal begun")
            try:
                yield
                self._commit()
            except BaseException:
                journal.close()  # left on disk: the next opening of the store rolls it back
                raise
            finally:
                self._journal = None
            journal.remove()
            _step("journal removed")

    def _protect(self, name: str, chunk: tuple[int, ...]) -> bool:
        """Journal chunk ``chunk`` of array ``name`` before it changes; whether it exists now."""
        path = self.path.joinpath(name, "c", *map(str, chunk))
        assert self._journal is not None, "chunks are written inside a transaction"
        return self._journal.protect(path, self.path)

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
                self._ids.setdefault(granule_identity(name), name)
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
            _step("log appended")
        self.manifest["commits"] = int(self.manifest.get("commits", 0)) + 1
        self._write_manifest()
        _step("manifest replaced")

    def _write_manifest(self) -> None:
        node = {"zarr_format": 3, "node_type": "group", "attributes": {MANIFEST_GROUP: self.manifest}}
        _replace_json(self.path / MANIFEST_GROUP / "zarr.json", lambda _: node)


def _step(point: str) -> None:
    """A point of the commit protocol where the process may die; the tests kill it (or copy the store) here."""


class _Journal:
    """The undo journal of one commit: how to put every chunk it changes back as it was.

    ``begin`` holds the commit count the transaction starts from; ``entries`` one JSON line per chunk
    changed, written before the chunk is: ``{"chunk": path, "backup": name}`` for a chunk that
    existed (kept as a hard link, so the old bytes outlive the replace), ``"backup": null`` for a new one.
    """

    def __init__(self, folder: Path, base: int):
        self.folder, self.base = folder, base
        self._seen: set[Path] = set()  # the chunks journaled
        self._entries = open(folder / "entries.jsonl", "ab", buffering=0)

    @classmethod
    def begin(cls, folder: Path, base: int) -> _Journal:
        if folder.exists():
            shutil.rmtree(folder)
        (folder / "backup").mkdir(parents=True)
        replace_file(folder / "begin", str(base).encode())
        return cls(folder, base)

    def protect(self, chunk: Path, root: Path) -> bool:
        """Record ``chunk`` before it is written or removed; whether it exists now (as far as this commit knows)."""
        if chunk in self._seen:
            return chunk.exists()
        backup: str | None = f"{len(self._seen)}"
        try:
            os.link(chunk, self.folder / "backup" / f"{backup}")
        except FileNotFoundError:
            backup = None
        except OSError:  # a file system without hard links
            shutil.copyfile(chunk, self.folder / "backup" / f"{backup}")
        line = json.dumps({"chunk": chunk.relative_to(root).as_posix(), "backup": backup}) + "\n"
        self._entries.write(line.encode())
        self._seen.add(chunk)
        _step("chunk journaled")
        return backup is not None

    def close(self) -> None:
        self._entries.close()

    def remove(self) -> None:
        self.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    @staticmethod
    def recover(folder: Path, commits: int) -> None:
        """Roll back the journal of a commit that did not happen (``commits`` is the manifest's count)."""
        if not folder.exists():
            return
        root = folder.parents[1]
        begun = folder / "begin"
        if begun.exists() and int(begun.read_text() or -1) == commits:
            entries = (folder / "entries.jsonl").read_bytes().decode() if (folder / "entries.jsonl").exists() else ""
            for line in reversed(entries.splitlines()):
                try:
                    entry = json.loads(line)
                except ValueError:  # a line torn by the kill: its chunk was not touched yet
                    continue
                chunk = root / entry["chunk"]
                if entry["backup"] is None:
                    chunk.unlink(missing_ok=True)
                elif (folder / "backup" / entry["backup"]).exists():
                    os.replace(folder / "backup" / entry["backup"], chunk)
        shutil.rmtree(folder)


class _Lock:
    """The one-writer lock of a store: an ``flock`` on a file that names its holder.

    The kernel drops an ``flock`` when its process ends however it ends, so a lock is never stale; the
    file's text (host, pid, start) is only there to name the holder to the writer that is refused.
    """

    def __init__(self, path: Path):
        import fcntl
        import socket
        import time

        self.path = path
        self._fd: int | None = None
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            os.close(self._fd)
            self._fd = None
            holder = _holder(path)
            raise StoreInUseError(
                f"{path.parents[1]}: another process is writing this store ({holder}). Wait for it to finish, "
                "stop it, or write to another store; two writers at once would mix their granules' bookkeeping. "
                "(The lock is an flock held by the process itself: it ends when that process ends.)"
            ) from err
        text = json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "since": time.strftime("%FT%T%z")})
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, text.encode(), 0)

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            os.close(fd)  # drops the flock

    def __del__(self) -> None:
        self.release()


def _state(path: Path) -> str:
    """What is at ``path``: a store, nothing yet ("new": also a store whose creation did not finish), or other."""
    if (path / MANIFEST_GROUP / LOCK).exists() and not (path / MANIFEST_GROUP / "zarr.json").exists():
        return "new"
    if (path / "zarr.json").exists():
        return "store"
    return "new" if not path.exists() else "other"


def _holder(path: Path) -> str:
    try:
        who = json.loads(path.read_text())
        return f"host {who['host']}, pid {who['pid']}, since {who['since']}"
    except (OSError, ValueError, KeyError):
        return "a process that has not yet said who it is"


def _clear(path: Path, *, keep: Path) -> None:
    """Remove what is at ``path`` (a file, or a folder's contents but the lock file ``keep``)."""
    if path.is_file() or path.is_symlink():
        path.unlink()
    for child in path.iterdir() if path.is_dir() else ():
        if child == keep.parent:
            for inner in child.iterdir():
                if inner != keep:
                    shutil.rmtree(inner) if inner.is_dir() else inner.unlink()
        else:
            shutil.rmtree(child) if child.is_dir() else child.unlink()


def _check_tiles(path: Path, manifest: dict[str, Any], request: GridRequest) -> None:
    """Every chunk file the manifest counts for a committed bin is there (a folder listing, no reads)."""
    counted = manifest.get("tiles")
    if counted is None:  # a store of an earlier is2grid, which did not count them
        return
    has_time = request.bins.freq is not None
    bins = int(manifest["written"])
    for slot in range(min(bins, len(counted))):
        for name, expected in zip(request.names, counted[slot], strict=True):
            folder = path / name / "c" / (str(slot) if has_time else "")
            found = _count_chunks(folder)
            if found < expected:
                when = ""
                if has_time and manifest["first_ordinal"] is not None:
                    start = request.bins.starts(np.array([int(manifest["first_ordinal"]) + slot]))[0]
                    when = f" of the time bin starting {start}"
                raise OutputError(
                    f"{path}: {expected - found} of the {expected} chunk files of '{name}'{when} are missing "
                    f"(looked in {folder}); the store was changed outside is2grid, so its values there are not "
                    "what was gridded. Re-grid into a new store, or pass overwrite=True (--overwrite) to replace it."
                )


def _count_chunks(folder: Path) -> int:
    """Chunk files under ``folder`` (temporary ``.partial`` files of an interrupted write do not count)."""
    count = 0
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(folder):
            if entry.is_dir():
                count += _count_chunks(Path(entry.path))
            elif not entry.name.endswith(".partial"):
                count += 1
    return count


@contextlib.contextmanager
def _os_errors(path: Path) -> Iterator[None]:
    """A full disk or a read-only folder as a named error with the fix (the store stays as last committed)."""
    import errno

    try:
        yield
    except OSError as err:
        if err.errno == errno.ENOSPC or err.errno == getattr(errno, "EDQUOT", None):
            raise OutputError(
                f"{path}: the disk is full (or the quota used up) while writing the store: {err.strerror}. Free "
                "space (or choose a store on another disk) and rerun the same command: the store resumes from its "
                "last commit."
            ) from err
        if err.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            raise OutputError(
                f"{path}: cannot write the store there ({err.strerror}). Choose a folder you can write to."
            ) from err
        if err.errno is None or isinstance(err, FileNotFoundError):
            raise
        raise OutputError(f"{path}: writing the store failed: {err}. Rerun to resume from its last commit.") from err
        raise


def _replace_json(path: Path, change) -> None:
    """Rewrite a JSON file atomically: the new text goes to a temporary file renamed over the old one."""
    old = json.loads(path.read_text()) if path.exists() else {}
    replace_file(path, json.dumps(change(old)).encode())


def read_manifest(path: str | os.PathLike) -> dict[str, Any]:
    """The committed state of the store at ``path``: its manifest, with the ``included`` and ``complete`` granules.

    Examples
    --------
    >>> import tempfile
    >>> from is2grid.grid.request import GridRequest
    >>> request = GridRequest.create("ease2", res=100000, hemisphere="south")
    >>> store = GridStore(tempfile.mkdtemp() + "/out.zarr", request)
    >>> store.release()
    >>> path = store.path
    >>> state = read_manifest(path)
    >>> state["written"], state["included"], state["complete"]
    (0, [], [])
    """
    path = Path(path)
    manifest = _load_manifest(path)
    included, complete, _ = _read_log(path, manifest, truncate=False)
    return {**manifest, "included": sorted(included), "complete": sorted(complete)}


def _load_manifest(path: Path) -> dict[str, Any]:
    node = path / MANIFEST_GROUP / "zarr.json"
    try:
        text = node.read_bytes()
    except OSError as err:
        raise OutputError(
            f"{path}: a Zarr store without an is2grid manifest; is2grid does not write into other "
            "stores. Choose another name, or pass overwrite=True (--overwrite) to replace it."
        ) from err
    try:
        manifest = json.loads(text)["attributes"][MANIFEST_GROUP]
        if not isinstance(manifest, dict) or not _MANIFEST_KEYS <= manifest.keys():
            raise ValueError(f"keys {sorted(_MANIFEST_KEYS - set(manifest))} missing")
        int(manifest["written"]), int(manifest.get("granule_log_bytes", 0)), int(manifest["segments"])
    except (KeyError, ValueError, TypeError, AttributeError) as err:
        raise OutputError(
            f"{path}: its is2grid manifest ({node}) is damaged ({type(err).__name__}: {err}), so what the store "
            "holds is unknown. Re-grid into a new store, or pass overwrite=True (--overwrite) to replace it."
        ) from err
    return manifest


_MANIFEST_KEYS = {"options", "first_ordinal", "written", "segments", "t_min", "t_max"}


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
        "filters": request.filters.describe(),
        "min_segments": int(request.min_segments),
        "product": request.product.name,
        "variable": request.variable,
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
