"""Cloud-native reading benchmark (issue 6): local decode speed, remote bytes/requests/latency, faults.

A. Local, N full-size synthetic granules, default variables of the strong beams:
   engine .load(), engine load_async(), the read path alone (one plan for every dataset), h5py, and
   the floor: inflating the same chunks with libdeflate on 2 threads. Also one-thread inflate speed
   of zlib, zlib-ng (if installed), isal and libdeflate on those chunks.
B. Remote, one full-size granule behind a loopback Range server adding 50 ms to every request:
   open + load of the two gridding variables and the coordinates, against h5py reading the same
   datasets through an fsspec HTTP file (what earthaccess.open gives). Requests, bytes, concurrency.
C. Faults on the same server: what a load ends with, and how long it takes.

Usage: python benchmarks/bench_cloud.py [--granules 4] [--repeats 5] [--remote-repeats 3] [--local-only] [--repacked]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import xarray as xr

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))
from bench_read import NAMES, PATHS, granules, strong, with_h5py
from common import machine, median, table, timed

from is2grid.io.reader import GranuleReader
from tests.servers import Behaviour, serve_scripted

GRIDDING = ["beam_fb_height", "height_segment_length_seg"]
GRIDDING_PATHS = ["beam_fb_height", "heights/height_segment_length_seg", "latitude", "longitude", "delta_time"]


def chunks_of(paths, names) -> list[tuple[bytes, int]]:
    import h5py

    found = []
    for p in paths:
        with h5py.File(p) as f:
            for beam in strong(p):
                for name in names:
                    d = f[f"{beam}/freeboard_segment/{name}"]
                    for i in range(d.id.get_num_chunks()):
                        info = d.id.get_chunk_info(i)
                        found.append((d.id.read_direct_chunk(info.chunk_offset)[1], d.chunks[0] * d.dtype.itemsize))
    return found


def local(paths, repeats: int) -> str:
    import deflate

    chunks = chunks_of(paths, [PATHS[n].split("/", 1)[1] for n in NAMES])
    raw = sum(n for _, n in chunks)
    pool = ThreadPoolExecutor(2)

    def floor():
        list(pool.map(lambda c: deflate.zlib_decompress(*c), chunks))

    def engine():
        for p in paths:
            xr.open_dataset(p, engine="atl10").load()

    def engine_mapped():
        """The local read path before issue 19: the file memory-mapped, chunks decoded from views of it."""
        from is2grid.io import sources

        original = sources.LocalFileSource
        sources.LocalFileSource = MappedSource
        try:
            engine()
        finally:
            sources.LocalFileSource = original

    def engine_async():
        async def main():
            await asyncio.gather(*(xr.open_dataset(p, engine="atl10").load_async() for p in paths))

        asyncio.run(main())

    def read_path():
        for p in paths:
            reader = GranuleReader(str(p))
            reader.read([(f"{b}/{PATHS[n]}", None, None) for b in strong(p) for n in NAMES])
            reader.close()

    methods = {
        "h5py (libhdf5 + zlib, 1 thread)": lambda: with_h5py(paths),
        "engine: open + .load()": engine,
        "engine, file memory-mapped instead of pread (before #19)": engine_mapped,
        "engine: open + await .load_async()": engine_async,
        "read path alone: one plan per granule": read_path,
        "floor: libdeflate inflate of the same chunks, 2 threads": floor,
    }
    for fn in methods.values():
        fn()
    times = timed(methods, repeats)
    base = median(times["h5py (libhdf5 + zlib, 1 thread)"])
    fl = median(times["floor: libdeflate inflate of the same chunks, 2 threads"])
    rows = [[name, f"{median(t):.3f}", f"{median(t) / base:.2f}", f"{median(t) / fl:.2f}"] for name, t in times.items()]
    decoders = {"zlib": lambda c, n: zlib.decompress(c)}
    try:
        from zlib_ng import zlib_ng

        decoders["zlib-ng"] = lambda c, n: zlib_ng.decompress(c)
    except ImportError:
        pass
    try:
        from isal import isal_zlib

        decoders["isal"] = lambda c, n: isal_zlib.decompress(c, bufsize=n)
    except ImportError:
        pass
    decoders["libdeflate (chosen)"] = lambda c, n: deflate.zlib_decompress(c, n)
    speed = []
    for name, fn in decoders.items():
        t = []
        for _ in range(3):
            start = time.perf_counter()
            for c, n in chunks:
                fn(c, n)
            t.append(time.perf_counter() - start)
        speed.append([name, f"{raw / 1e6 / median(t):.0f}"])
    return (
        f"### A. Local: {len(paths)} full-size granules, default variables ({len(NAMES)}) of the strong beams\n\n"
        f"{raw / 1e6:.0f} MB decompressed from {sum(len(c) for c, _ in chunks) / 1e6:.0f} MB of chunks; warm page "
        f"cache; {repeats} interleaved repeats, medians.\n\n"
        + table(rows, ["method", "median s", "/ h5py", "/ floor"])
        + "\n\nOne-thread inflate speed of the same chunks (MB/s of output):\n\n"
        + table(speed, ["decoder", "MB/s"])
    )


def repacked(paths):
    """Copies of ``paths`` rewritten by libhdf5's h5repack (granules is2grid's writer did not make), cached."""
    import shutil
    import subprocess

    from common import CACHE

    if shutil.which("h5repack") is None:
        raise SystemExit("--repacked needs h5repack (Debian: hdf5-tools)")
    folder = CACHE / "repacked"
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for path in paths:
        target = folder / path.name
        if not target.exists():
            print(f"h5repack {path.name}", flush=True)
            subprocess.run(["h5repack", str(path), str(target)], check=True)
        out.append(target)
    return out


def _mapped_source():
    import mmap

    from is2grid.io.sources import LocalFileSource

    class MappedSource(LocalFileSource):
        """Ranges as views of the file mapped in memory (no copy); SIGBUS if the file shrinks while open."""

        _map = None

        def read(self, starts, stops):
            if self._map is None:
                fd = self._descriptor()
                self._map = memoryview(mmap.mmap(fd, self._size, access=mmap.ACCESS_READ))
            return [self._map[a:b] for a, b in zip(starts, stops, strict=True)]

        def release(self):
            if self._map is not None:
                self._map.obj.madvise(mmap.MADV_DONTNEED)

        def close(self):
            self._map = None
            super().close()

    return MappedSource


MappedSource = _mapped_source()


@contextlib.contextmanager
def served(path: Path, **behaviour):
    """A loopback Range server for ``path`` with 50 ms per request: yields its plan and the file's URL.

    The server is stopped without timing it (shutdown waits up to half a second for its poll loop).
    """
    plan = Behaviour(**{"latency": 0.05, **behaviour})
    server, url = serve_scripted(path.parent, plan)
    try:
        yield plan, f"{url}/{path.name}"
    finally:
        threading.Thread(target=server.shutdown, daemon=True).start()


def remote(path: Path, repeats: int) -> str:
    import fsspec
    import h5py

    with h5py.File(path) as f:
        compressed = sum(
            f[f"{b}/freeboard_segment/{n}"].id.get_chunk_info(i).size
            for b in strong(path)
            for n in GRIDDING_PATHS
            for i in range(f[f"{b}/freeboard_segment/{n}"].id.get_num_chunks())
        )
    stats: dict[str, list[tuple[int, int, int]]] = {"engine": [], "h5py": [], "sidecar": []}
    from bench_flight import with_sidecars

    beside = with_sidecars([path]) / path.name

    def engine():
        with served(path) as (plan, url):
            xr.open_dataset(url, engine="atl10", variables=GRIDDING).load()
        stats["engine"].append((plan.requests, plan.bytes_sent, plan.max_in_flight))

    def sidecar():
        with served(beside) as (plan, url):
            xr.open_dataset(url, engine="atl10", variables=GRIDDING).load()
        stats["sidecar"].append((plan.requests, plan.bytes_sent, plan.max_in_flight))

    def h5py_fsspec():
        with served(path) as (plan, url), fsspec.open(url, "rb") as fo, h5py.File(fo) as f:
            for b in strong(path):
                for n in GRIDDING_PATHS:
                    f[f"{b}/freeboard_segment/{n}"][:]
        stats["h5py"].append((plan.requests, plan.bytes_sent, plan.max_in_flight))

    times = timed({"engine": engine, "sidecar": sidecar, "h5py": h5py_fsspec}, repeats)
    base = median(times["h5py"])
    rows = []
    sidecar_mb = (beside.parent / (path.name + ".dmrpp")).stat().st_size / 1e6
    for name, label in (
        ("engine", "engine (obstore, coalesced, read-ahead)"),
        ("sidecar", f"engine, with the granule's DMR++ sidecar ({sidecar_mb:.1f} MB)"),
        ("h5py", "h5py + fsspec HTTP file"),
    ):
        requests, sent, flight = stats[name][-1]
        rows.append(
            [
                label,
                f"{median(times[name]):.2f}",
                f"{median(times[name]) / base:.2f}",
                str(requests),
                f"{sent / 1e6:.1f}",
                f"{sent / (compressed + 2e6):.2f}",
                str(flight),
            ]
        )
    return (
        f"### B. Remote: one full-size granule ({path.stat().st_size / 1e6:.0f} MB), loopback Range server with 50 ms "
        f"per request\n\nopen + load of {', '.join(GRIDDING)} and the coordinates of the strong beams: "
        f"{compressed / 1e6:.1f} MB of compressed chunks; {repeats} interleaved repeats, medians.\n\n"
        + table(
            rows,
            [
                "method",
                "median s",
                "/ h5py+fsspec",
                "requests",
                "MB moved",
                "MB / (chunks + 2 MB)",
                "max in flight",
            ],
        )
    )


def open_cost(path: Path, repeats: int) -> str:
    """What decoding delta_time costs at open: the engine's own decoding, xarray's coder, none."""
    counts: dict[str, tuple[int, int]] = {}
    modes = {
        "decode_times=True (the engine decodes)": True,
        "decode_times=CFDatetimeCoder() (xarray decodes)": xr.coders.CFDatetimeCoder(),
        "decode_times=False": False,
    }

    def remote_open(label: str):
        def run():
            with served(path) as (plan, url):
                xr.open_dataset(url, engine="atl10", decode_times=modes[label]).close()
            counts[label] = (plan.requests, plan.bytes_sent)

        return run

    def local_open(label: str):
        return lambda: xr.open_dataset(path, engine="atl10", decode_times=modes[label]).close()

    cases = {f"local, {label}": local_open(label) for label in modes}
    cases.update({f"remote (50 ms), {label}": remote_open(label) for label in modes})
    times = timed(cases, repeats)
    rows = []
    for name in cases:
        where, label = name.split(", ", 1)
        requests, sent = counts[label] if where.startswith("remote") else ("", 0)
        moved = f"{sent / 1e6:.2f}" if where.startswith("remote") else ""
        rows.append([name, f"{median(times[name]) * 1000:.0f}", str(requests), moved])
    return (
        "### D. Opening: the cost of decoding times\n\nWith xarray's coder, xarray decodes the first and last "
        "`delta_time` at open to check its units, which reads two chunks; the engine's own decoding (the "
        f"default) needs no check. {repeats} interleaved repeats, medians.\n\n"
        + table(rows, ["open", "median ms", "requests", "MB moved"])
    )


def faults(path: Path) -> str:
    import is2grid

    reference = xr.open_dataset(path, engine="atl10", variables=GRIDDING).load()
    cases = {
        "every 3rd request 503": {"fail_every": 3},
        "every 5th connection reset mid-body": {"reset_every": 5},
        "every 3rd 503 and every 5th reset": {"fail_every": 3, "reset_every": 5},
        "one request in 50 stalls 30 s": {"stall_every": 50, "stall": 30},
        "every 4th body cut short": {"short_every": 4},
        "every 3rd answer the wrong range": {"wrong_range_every": 3},
        "1 byte per second": {"trickle": 1.0},
    }
    rows = []
    options = {"timeout": 5.0, "retries": 6, "backoff": 0.05}
    for name, behaviour in cases.items():
        start = time.perf_counter()
        with served(path, **behaviour) as (plan, url):
            try:
                ds = xr.open_dataset(url, engine="atl10", variables=GRIDDING, storage_options=options).load()
                outcome = "values equal" if ds.identical(reference) else "WRONG VALUES"
            except is2grid.GranuleError as err:
                outcome = f"{type(err).__name__}: {str(err).split(': ', 1)[1][:70]}..."
        rows.append([name, outcome, f"{time.perf_counter() - start:.1f}", str(plan.requests)])
    return "### C. Faults (same server and granule; storage_options timeout=5 s, retries=6)\n\n" + table(
        rows, ["fault", "outcome", "s", "requests"]
    )


def main() -> str:
    parser = argparse.ArgumentParser()
    parser.add_argument("--granules", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--remote-repeats", type=int, default=3)
    parser.add_argument("--local-only", action="store_true", help="only table A")
    parser.add_argument("--remote-only", action="store_true", help="only table B")
    parser.add_argument("--repacked", action="store_true", help="table A on h5repack'd copies (libhdf5's writer)")
    args = parser.parse_args()
    paths = granules(args.granules)
    if args.repacked:
        paths = repacked(paths)
    np.seterr(all="ignore")
    if args.remote_only:
        report = f"Machine: {machine()}\n\n{remote(paths[0], args.remote_repeats)}"
        print(report)
        return report
    if args.local_only:
        report = f"Machine: {machine()}\n\n{local(paths, args.repeats)}"
        print(report)
        return report
    report = "\n\n".join(
        [
            f"Machine: {machine()}",
            local(paths, args.repeats),
            remote(paths[0], args.remote_repeats),
            faults(paths[0]),
            open_cost(paths[0], args.repeats),
        ]
    )
    print(report)
    return report


if __name__ == "__main__":
    main()
