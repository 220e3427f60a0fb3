"""What the Zarr store's safety costs (issue 19): the undo journal of every commit, and the chunk check on reopen.

A. Filling a store: 8 full-size granules' cell sums (read once, before timing), daily bins, EASE-Grid 2.0
   South 6.25 km, whole grid; the store as shipped (every chunk journaled before it is written) against
   the same store with journaling turned off (the protocol before issue 19), interleaved.
B. Merging: 2 late granules added to a store that holds the other 6 (their tiles are rewritten in place,
   so every one is journaled), the same two ways.
C. Reopening a year: a store of 365 daily bins (one granule's sums on every day), reopened with the
   chunk-file check (a folder listing per bin and array) against without it.

Usage: python benchmarks/bench_store.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_read import granules
from common import machine, median, table, timed

from is2grid import workflow
from is2grid.grid.reduction import CellSums
from is2grid.grid.request import GridRequest
from is2grid.output import zarr_store
from is2grid.products import ATL10


@contextlib.contextmanager
def journaling(on: bool):
    """The store as shipped, or with its undo journal turned off (chunks written in place, unprotected)."""
    if on:
        yield
        return
    protect, begin, remove = zarr_store._Journal.protect, zarr_store._Journal.begin, zarr_store._Journal.remove

    class Nothing:
        def protect(self, chunk, root):
            return chunk.exists()

        def close(self):
            pass

        def remove(self):
            pass

    zarr_store._Journal.begin = classmethod(lambda cls, folder, base: Nothing())  # type: ignore[method-assign]
    try:
        yield
    finally:
        zarr_store._Journal.protect, zarr_store._Journal.begin, zarr_store._Journal.remove = protect, begin, remove


def fill(path: Path, request: GridRequest, sums: dict[str, CellSums]) -> None:
    """What grid_granules does with a store, granule after granule (the sums given)."""
    store = zarr_store.GridStore(path, request, overwrite=True)
    names = sorted(sums)
    for i, name in enumerate(names):
        store.add(name, sums[name])
        if i + 1 < len(names):
            store.flush(ATL10.start_time_from_name(names[i + 1]))
    store.flush_all()
    store.close({})


def merge(path: Path, base: Path, request: GridRequest, late: dict[str, CellSums]) -> None:
    shutil.rmtree(path, ignore_errors=True)
    shutil.copytree(base, path)
    store = zarr_store.GridStore(path, request)
    for name in sorted(late):
        store.add(name, late[name])
    store.flush_all()
    store.close({})


def main() -> str:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    paths = granules(8)
    request = GridRequest.create("ease2", res=6250, hemisphere="south", freq="1D")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sums = {p.name: workflow._granule_sums(p, request, "strong", None, None) for p in paths}
    work = Path(tempfile.mkdtemp(prefix="is2grid-bench-store-"))
    try:
        runs = {}
        for on in (True, False):
            label = "journaled (as shipped)" if on else "no journal (before #19)"
            runs[f"A. fill, {label}"] = lambda on=on: _with(on, fill, work / f"a{on}.zarr", request, sums)
        late_names = sorted(sums)[2:4]
        first = {n: s for n, s in sums.items() if n not in late_names}
        fill(work / "base.zarr", request, first)
        late = {n: sums[n] for n in late_names}
        for on in (True, False):
            label = "journaled (as shipped)" if on else "no journal (before #19)"
            runs[f"B. merge 2 late granules, {label}"] = lambda on=on: _with(
                on, merge, work / f"b{on}.zarr", work / "base.zarr", request, late
            )
        times = timed(runs, args.repeats)
        tiles = sum(f.is_file() for f in (work / "aTrue.zarr" / "mean_fb" / "c").rglob("*"))
        rows = []
        for section in ("A", "B"):
            names = [n for n in times if n.startswith(section)]
            base = median(times[names[1]])
            rows += [[n, f"{median(times[n]):.3f}", f"{median(times[n]) / base:.2f}"] for n in names]
        year = reopen_year(work, request, sums[sorted(sums)[0]], args.repeats)
        kept = sums_size(work / "aTrue.zarr")
        report = (
            f"Machine: {machine()}\n\n8 full-size synthetic granules' sums (read before timing), daily bins, EASE-Grid "
            f"2.0 South 6.25 km, whole grid; {tiles} tiles of mean_fb in the filled store; {args.repeats} interleaved "
            "repeats, medians.\n\n" + table(rows, ["run", "median s", "/ no journal"]) + "\n\n" + year + "\n\n" + kept
        )
        print(report)
        return report
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _with(on, fn, *args):
    with journaling(on):
        fn(*args)


def sums_size(path: Path) -> str:
    """D. Bytes of the statistics' chunks against the four float64 sums of the same tiles, zstd as the store."""
    import zarr
    from numcodecs.zstd import Zstd

    from is2grid.grid import reduction

    group = zarr.open_group(path, mode="r")
    level = group["mean_fb"].metadata.codecs[1].level
    codec = Zstd(level=level)
    stats_bytes = sum(f.stat().st_size for name in reduction.STATISTICS for f in (path / name / "c").rglob("*")
                      if f.is_file())  # fmt: skip
    sums_bytes = 0
    for chunk in (path / "n_segments" / "c").rglob("*"):
        if not chunk.is_file():
            continue
        t, r, c = (int(part) for part in chunk.relative_to(path / "n_segments" / "c").parts)
        where = (t, slice(r * 512, (r + 1) * 512), slice(c * 512, (c + 1) * 512))
        count = np.asarray(group["n_segments"][where])
        stats = [np.asarray(group[n][where], dtype=np.float64) for n in ("mean_seg_length", "mean_fb", "std_fb")]
        sums = [count.astype(np.float64), *reduction.length_sums(count, *stats)]
        sums_bytes += sum(len(codec.encode(np.nan_to_num(s).astype("<f8"))) for s in sums)
    return (
        f"D. Keeping the sums: the five statistics' chunks take {stats_bytes / 1e6:.2f} MB; the four float64 sums "
        f"(n, sum L, sum L h, sum L h^2) of the same tiles, zstd level {level} as the store, would add "
        f"{sums_bytes / 1e6:.2f} MB ({sums_bytes / stats_bytes:.2f}x the statistics)."
    )


def reopen_year(work: Path, request: GridRequest, one: CellSums, repeats: int) -> str:
    grid = request.grid
    ordinal, row, col = grid.split_keys(one.keys)
    year = {}
    for day in range(365):
        keys = grid.keys(np.full(row.size, int(ordinal.min()) + day), row, col)
        year[f"ATL10-02_2019{day:03d}_{day}"] = CellSums(
            keys, one.count, one.sum_length, one.sum_length_h, one.sum_length_h2
        )
    path = work / "year.zarr"
    store = zarr_store.GridStore(path, request, overwrite=True)
    for name in sorted(year):
        store.add(name, year[name])
    store.flush_all()
    store.close({})
    check = zarr_store._check_tiles

    def reopen(checked: bool):
        zarr_store._check_tiles = check if checked else (lambda *a: None)
        try:
            zarr_store.GridStore(path, request).release()
        finally:
            zarr_store._check_tiles = check

    times = timed({"with the chunk check": lambda: reopen(True), "without": lambda: reopen(False)}, repeats)
    files = sum(f.is_file() for f in (path / "n_segments" / "c").rglob("*"))
    on, off = median(times["with the chunk check"]), median(times["without"])
    return (
        f"C. Reopening a store of 365 daily bins ({files} chunk files per array): {on * 1000:.0f} ms with the chunk "
        f"check, {off * 1000:.0f} ms without ({(on - off) * 1000 / 365:.2f} ms per bin)."
    )


if __name__ == "__main__":
    main()
