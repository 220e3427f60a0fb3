"""A month from the cloud at the speed of a month from disk (issue 22): granules in flight.

A. One process, in memory, daily EASE-Grid 2.0 6.25 km, N full-size synthetic granules: local files
   against the same files behind a loopback HTTP/1.1 Range server (keep-alive, as S3 and NASA's
   servers) that adds a latency to every request, one granule at a time (``in_flight=1``, what
   grid_granules did before) and with the default granules in flight. The server runs in a process of
   its own, so its work does not share the measured interpreter's GIL (it still shares the 2 cores).
   The server sends files with ``sendfile``, as nginx or S3's front ends do, so that it takes little of
   the cores the run needs. Each run is a fresh interpreter that first grids another granule from the
   same place (a local file, or the same server: imports, first-call costs and open connections, as in
   a session that has run before), then times the call: wall time, peak resident memory (VmHWM), the
   granules and bytes fetched ahead at most (from is2grid's log), and the requests and bytes the server
   counted. Ratios are given twice: of the medians, and the median of each interleaved repeat's ratio
   (this machine's speed drifts over minutes).
B. The same on a LocalCluster of 2 one-thread workers, local files: one process against two plain
   processes sharing nothing (8 granules each, started together) against the cluster, in memory and
   to a Zarr store, each timed after its start-up; and the cluster over the 50 ms server against one
   process over the same server. Every run of B warms up on a local granule (the cluster's workers too).

Run: ``python benchmarks/bench_flight.py [--granules 8 16] [--latency 0.05 0.2] [--repeats 3]``
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_cloud import repacked
from bench_scale import CLEAN_ENVIRON, _one_run, _plain_processes, month
from common import machine, median, table

RES = 6250
SCRIPT = str(Path(__file__).resolve())


# ---------------------------------------------------------------- the server, in a process of its own
def _serve(folder: str, latency: float) -> None:
    """In a fresh interpreter: serve ``folder``; print the URL; answer "stats" and "reset" lines on stdin."""
    sys.path.insert(0, str(Path(__file__).parent.parent))
    from tests.servers import Behaviour, serve_scripted

    plan = Behaviour(latency=latency)
    _server, url = serve_scripted(Path(folder), plan)
    print(url, flush=True)
    for line in sys.stdin:
        if line.strip() == "stats":
            print(json.dumps({"requests": plan.requests, "bytes": plan.bytes_sent, "max": plan.max_in_flight}))
            sys.stdout.flush()
        elif line.strip() == "reset":
            with plan.lock:
                plan.requests = plan.bytes_sent = plan.max_in_flight = 0
            print("ok", flush=True)


class Server:
    """A loopback Range server adding ``latency`` seconds to every request, in a subprocess."""

    def __init__(self, folder: Path, latency: float):
        self.proc = subprocess.Popen(
            [sys.executable, SCRIPT, "--serve", str(folder), str(latency)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip()

    def ask(self, what: str) -> str:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(what + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline()

    def stats(self) -> dict:
        return json.loads(self.ask("stats"))

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


# ---------------------------------------------------------------- one measured run, in a fresh interpreter
def _run(spec: str) -> None:
    """In a fresh interpreter: grid the granules of ``spec`` (JSON) once; print seconds, VmHWM, flight log."""
    import logging

    from is2grid import workflow

    args = json.loads(spec)
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())

    # what a long-lived session has done already: imports, first-call costs (this machine sets
    # PYTHONDONTWRITEBYTECODE, so a fresh interpreter also compiles every module it imports)
    workflow.grid_granules(args["warm"], res=RES, freq="1D", progress=False)
    print("warm", flush=True)  # the server's counts start here
    sys.stdin.readline()
    logging.getLogger("is2grid.in_flight").addHandler(Keep())
    logging.getLogger("is2grid.in_flight").setLevel(logging.INFO)
    start = time.perf_counter()
    workflow.grid_granules(
        args["paths"],
        res=RES,
        freq="1D",
        progress=False,
        in_flight=args["in_flight"],
        in_flight_bytes=args.get("in_flight_bytes"),
    )
    seconds = time.perf_counter() - start
    hwm = next(
        int(line.split()[1]) * 1024 for line in Path("/proc/self/status").read_text().splitlines() if "VmHWM" in line
    )
    print(json.dumps({"seconds": seconds, "hwm": hwm, "log": records}))


def _measure(
    paths: list[str],
    in_flight: int | None,
    warm: str,
    in_flight_bytes: int | None = None,
    env: dict | None = None,
    server: Server | None = None,
) -> dict:
    """One run in a fresh interpreter, after gridding the granule ``warm`` there (not timed).

    ``server``: its counts are reset once the warm-up is done, and returned with the run's (``"server"``).
    """
    spec = json.dumps({"paths": paths, "in_flight": in_flight, "warm": [warm], "in_flight_bytes": in_flight_bytes})
    with subprocess.Popen(
        [sys.executable, "-W", "ignore", SCRIPT, "--run", spec],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**CLEAN_ENVIRON, **(env or {})},
    ) as proc:
        assert proc.stdin is not None and proc.stdout is not None
        if proc.stdout.readline().strip() == "warm":
            if server is not None:
                server.ask("reset")
            proc.stdin.write("go\n")
            proc.stdin.flush()
        out = proc.stdout.read()
    if proc.returncode:
        raise subprocess.CalledProcessError(proc.returncode, "bench_flight.py --run")
    result = json.loads(out.strip().splitlines()[-1])
    if server is not None:
        result["server"] = server.stats()
    return result


def _flight_of(log: list[str]) -> tuple[str, str]:
    """(granules, MB) in flight at most, from the in_flight log line."""
    for line in log:
        found = re.search(r"at most (\d+) fetched ahead at once, (\d+) MB held", line)
        if found:
            return found[1], found[2]
    return "1", "-"


def with_sidecars(paths: list[Path]) -> Path:
    """A folder of links to ``paths`` with a DMR++ sidecar beside each, written from h5py's view of the file."""
    sys.path.insert(0, str(Path(__file__).parent.parent))
    from tests.dmrpp_writer import write_sidecar

    folder = paths[0].parent.parent / f"{paths[0].parent.name}-dmrpp"
    folder.mkdir(exist_ok=True)
    for path in paths:
        link = folder / path.name
        if not link.exists():
            link.symlink_to(path.resolve())
        if not (folder / (path.name + ".dmrpp")).exists():
            write_sidecar(link)
    return folder


def one_process(
    n: int,
    latencies: list[float],
    repeats: int,
    one_at_a_time: bool = False,
    budgets: tuple[int, ...] = (),
    arenas: int | None = None,
    repack: bool = False,
) -> str:
    granules = repacked(month(n)) if repack else month(n)
    spare = month(17)[-1]  # a granule of the same size, not among them, in the same folder
    if repack:
        spare = repacked([spare])[0]
    paths = [str(p) for p in granules]
    folders = {"": spare.parent, ", DMR++ sidecars": with_sidecars([*granules, spare])}
    servers = {(latency, kind): Server(folder, latency) for latency in latencies for kind, folder in folders.items()}
    try:
        # each run warms up on the path it is measured on: a local granule, or one from the same server
        configs: dict[str, tuple[list[str], int | None, Server | None, int | None, str]] = {
            "local": (paths, None, None, None, str(spare))
        }
        arena = {"MALLOC_ARENA_MAX": str(arenas)} if arenas else {}
        if arenas:
            configs[f"local, MALLOC_ARENA_MAX={arenas}"] = (paths, None, None, None, str(spare))
        for (latency, kind), server in servers.items():
            urls = [f"{server.url}/{Path(p).name}" for p in paths]
            warm = f"{server.url}/{spare.name}"
            if one_at_a_time and not kind:
                configs[f"{latency * 1000:.0f} ms, one at a time"] = (urls, 1, server, None, warm)
            configs[f"{latency * 1000:.0f} ms, in flight{kind}"] = (urls, None, server, None, warm)
            for mib in budgets if kind else ():
                label = f"{latency * 1000:.0f} ms, in flight{kind}, {mib} MiB"
                configs[label] = (urls, None, server, mib * 2**20, warm)
            if arenas and kind:
                label = f"{latency * 1000:.0f} ms, in flight{kind}, MALLOC_ARENA_MAX={arenas}"
                configs[label] = (urls, None, server, None, warm)
        runs: dict[str, list[dict]] = {k: [] for k in configs}
        for _ in range(repeats):  # interleaved
            for key, (targets, flight, server, nbytes, warm) in configs.items():
                result = _measure(targets, flight, warm, nbytes, arena if "MALLOC_ARENA_MAX" in key else None, server)
                runs[key].append(result)
    finally:
        for server in servers.values():
            server.close()
    base = median([r["seconds"] for r in runs["local"]])
    base_hwm = median([r["hwm"] for r in runs["local"]])
    rows = []
    for key, results in runs.items():
        seconds = median([r["seconds"] for r in results])
        hwm = median([r["hwm"] for r in results])
        # this machine drifts over minutes: the ratio within each interleaved repeat, then its median
        paired = median([r["seconds"] / b["seconds"] for r, b in zip(results, runs["local"], strict=True)])
        paired_hwm = median([r["hwm"] / b["hwm"] for r, b in zip(results, runs["local"], strict=True)])
        granules, held = _flight_of(results[-1]["log"])
        server = results[-1].get("server")
        rows.append(
            [
                key,
                f"{seconds:.2f}",
                f"**{seconds / base:.2f}x**",
                f"{paired:.2f}x",
                f"{hwm / 1e6:.0f} MB ({hwm / base_hwm:.2f}x)",
                f"{paired_hwm:.2f}x",
                granules,
                held,
                str(server["requests"]) if server else "-",
                str(server["max"]) if server else "-",
                f"{server['bytes'] / 1e6:.0f}" if server else "-",
            ]
        )
    return f"#### {n} granules\n\n" + table(
        rows,
        [
            "granules from",
            f"median s of {repeats}",
            "/ local",
            "/ local, paired",
            "peak RSS (/ local)",
            "peak / local, paired",
            "granules in flight",
            "MB held in flight",
            "requests",
            "requests in flight",
            "MB moved",
        ],
    )


# ---------------------------------------------------------------- B. a cluster against plain processes
def cluster(n: int, repeats: int, latency: float) -> str:
    import distributed

    paths = month(n)
    server = Server(paths[0].parent, latency)
    with_dmrpp = Server(with_sidecars(paths), latency)
    urls = [f"{server.url}/{p.name}" for p in paths]
    sidecar_urls = [f"{with_dmrpp.url}/{p.name}" for p in paths]
    options = {"threads_per_worker": 1, "processes": True, "dashboard_address": ":0"}
    keys = (
        "plain-one", "plain-two", "cluster-store", "cluster-memory", "plain-one-memory", "one-remote", "cluster-remote",
        "one-dmrpp", "cluster-dmrpp",
    )  # fmt: skip
    runs: dict[str, list[float]] = {k: [] for k in keys}
    warm = str(month(17)[-1])
    try:
        with distributed.LocalCluster(n_workers=2, **options) as lc, distributed.Client(lc) as client:
            _one_run(paths[:2], client)  # the workers import is2grid once, as a long run would
            for _ in range(repeats):
                runs["plain-one"].append(_plain_processes([paths]))
                runs["plain-two"].append(_plain_processes([paths[0::2], paths[1::2]]))
                runs["cluster-store"].append(_one_run(paths, client))
                runs["plain-one-memory"].append(_plain_processes([paths], "memory"))
                runs["cluster-memory"].append(_one_run(paths, client, to_store=False))
                runs["one-remote"].append(_measure([str(u) for u in urls], None, warm)["seconds"])
                runs["cluster-remote"].append(_one_run(urls, client, to_store=False))
                runs["one-dmrpp"].append(_measure([str(u) for u in sidecar_urls], None, warm)["seconds"])
                runs["cluster-dmrpp"].append(_one_run(sidecar_urls, client, to_store=False))
    finally:
        server.close()
        with_dmrpp.close()
    m = {k: median(v) for k, v in runs.items()}
    plain = m["plain-one"] / m["plain-two"]
    store = m["plain-one"] / m["cluster-store"]
    memory = m["plain-one-memory"] / m["cluster-memory"]
    ms = f"{latency * 1000:.0f} ms"
    rows = [
        [label, f"{m[key]:.2f} s", f"{min(runs[key]):.2f}-{max(runs[key]):.2f}"]
        for key, label in (
            ("plain-one", "one process (fresh interpreter, no Dask), to a store"),
            ("plain-two", "two plain processes sharing nothing, 8 granules each, each to its own store"),
            ("cluster-store", "**LocalCluster 2 workers, to a store**"),
            ("plain-one-memory", "one process, in memory"),
            ("cluster-memory", "**LocalCluster 2 workers, in memory**"),
            ("one-remote", f"one process, over the {ms} server, in memory"),
            ("cluster-remote", f"**LocalCluster 2 workers, over the {ms} server, in memory**"),
            ("one-dmrpp", f"one process, over the {ms} server with DMR++ sidecars, in memory"),
            ("cluster-dmrpp", f"**LocalCluster 2 workers, over the {ms} server with DMR++ sidecars, in memory**"),
        )
    ]
    return (
        table(rows, ["run", f"median of {repeats}", "range"])
        + f"\n\nTwo plain processes get **{plain:.2f}x** over one. The cluster gets **{store:.2f}x** to a store "
        f"(**{(store - 1) / (plain - 1):.0%}** of the plain processes' speed-up) and **{memory:.2f}x** in memory "
        f"(**{(memory - 1) / (plain - 1):.0%}**). Over the {ms} server the cluster takes "
        f"**{m['cluster-remote'] / m['one-remote']:.2f}x** the time of one process, and "
        f"**{m['cluster-dmrpp'] / m['one-dmrpp']:.2f}x** with sidecars.\n"
    )


def main() -> str:
    parser = argparse.ArgumentParser()
    parser.add_argument("--granules", type=int, nargs="+", default=[8, 16])
    parser.add_argument("--latency", type=float, nargs="+", default=[0.05, 0.2])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-cluster", action="store_true")
    parser.add_argument("--only-cluster", action="store_true")
    parser.add_argument("--one-at-a-time", action="store_true", help="also time in_flight=1 (what came before)")
    parser.add_argument("--budgets", type=int, nargs="*", default=[], help="also in_flight_bytes of these MiB")
    parser.add_argument("--arena-max", type=int, help="also local and sidecar runs with glibc's MALLOC_ARENA_MAX=N")
    parser.add_argument("--repacked", action="store_true", help="table A on h5repack'd copies (libhdf5's writer)")
    args = parser.parse_args()
    month(max(args.granules))
    parts = [f"Machine: {machine()}"]
    if not args.only_cluster:
        parts.append(f"### A. One process, in memory, daily {RES / 1000:g} km, full-size granules\n")
        parts += [
            one_process(
                n, args.latency, args.repeats, args.one_at_a_time, tuple(args.budgets), args.arena_max, args.repacked
            )
            for n in args.granules
        ]
    if not args.skip_cluster:
        n = max(args.granules)
        parts.append(f"### B. LocalCluster of 2 one-thread workers, {n} granules, daily {RES / 1000:g} km\n")
        parts.append(cluster(n, args.repeats, min(args.latency)))
    return "\n\n".join(parts)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        _serve(sys.argv[2], float(sys.argv[3]))
    elif len(sys.argv) > 1 and sys.argv[1] == "--run":
        _run(sys.argv[2])
    else:
        print(main())
