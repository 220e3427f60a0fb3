"""When a run in flight gives memory back, what it costs and what it saves (issue 22).

A run in flight gives the free memory of glibc's arenas back to the system (``malloc_trim``, ``is2grid.
_malloc.give_back``) once, after its last granule ("last", as shipped). Until the twenty-second session it
did so after every granule that fetched ahead ("each"): ``malloc_trim`` returns the
free pages of every arena, the calling thread's own included, so each gridding touched again, zero-filled,
pages it would have reused. "off": never. Each repeat runs, interleaved and each in a fresh interpreter
warmed up on another granule from the same place (as ``bench_flight.py`` does): the granules from local
files, then the same granules behind the loopback server with DMR++ sidecars in each way. For each run: wall
time, peak resident memory (VmHWM), and the system CPU time of the calling thread during the call
(``RUSAGE_THREAD``: its page faults and the trims; the thread that decodes and grids). Ratios are of the
medians and, in brackets, the median of each repeat's ratio to its local run.

Run: ``python benchmarks/bench_give_back.py [--granules 8 16] [--latency 0.05 0.2] [--repeats 5]
[--arena-max 2]``
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_flight import Server, with_sidecars
from bench_scale import CLEAN_ENVIRON, month
from common import machine, median, table

RES = 6250
SCRIPT = str(Path(__file__).resolve())


def _run(spec: str) -> None:
    """In a fresh interpreter: warm up, grid the granules of ``spec`` (JSON) once; print the measures."""
    import resource

    from is2grid import _malloc, workflow

    args = json.loads(spec)
    give_back = _malloc.give_back
    if args["give"] == "off":
        _malloc.give_back = lambda: True
    elif args["give"] == "each":  # after every granule gridded in a run in flight, as before
        _malloc.give_back = lambda: True
        in_order = workflow.in_order

        def each(first, then, items, granules, *rest, **options):
            def then_given_back(*a):
                try:
                    return then(*a)
                finally:
                    give_back()

            return in_order(first, then_given_back if granules > 1 else then, items, granules, *rest, **options)

        workflow.in_order = each
    workflow.grid_granules(args["warm"], res=RES, freq="1D", progress=False)
    before = resource.getrusage(resource.RUSAGE_THREAD)
    start = time.perf_counter()
    workflow.grid_granules(args["paths"], res=RES, freq="1D", progress=False)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_THREAD)
    hwm = next(
        int(line.split()[1]) * 1024 for line in Path("/proc/self/status").read_text().splitlines() if "VmHWM" in line
    )
    print(json.dumps({"seconds": seconds, "hwm": hwm, "system": after.ru_stime - before.ru_stime}))


def _one(paths: list[str], warm: str, give: str, environ: dict[str, str]) -> dict:
    spec = json.dumps({"paths": paths, "warm": [warm], "give": give})
    done = subprocess.run(
        [sys.executable, "-W", "ignore", SCRIPT, "--run", spec], capture_output=True, text=True, env=environ
    )
    if done.returncode:
        raise RuntimeError(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def compare(n: int, latency: float, repeats: int, arenas: int | None) -> list[str]:
    """One row per way of giving back: local, last, each, off, for ``n`` granules ``latency`` seconds away."""
    granules, spare = month(n), month(17)[-1]
    folder = with_sidecars([*granules, spare])
    environ = {**CLEAN_ENVIRON, **({"MALLOC_ARENA_MAX": str(arenas)} if arenas else {})}
    server = Server(folder, latency)
    local = ([str(folder / p.name) for p in granules], str(folder / spare.name))
    remote = ([f"{server.url}/{p.name}" for p in granules], f"{server.url}/{spare.name}")
    runs: dict[str, list[dict]] = {"local": [], "last": [], "each": [], "off": []}
    try:
        for _ in range(repeats):
            runs["local"].append(_one(*local, "last", environ))
            for give in ("last", "each", "off"):
                runs[give].append(_one(*remote, give, environ))
    finally:
        server.close()
    base = runs["local"]
    rows = []
    for name, results in runs.items():
        t, m = median([r["seconds"] for r in results]), median([r["hwm"] for r in results])
        t0, m0 = median([r["seconds"] for r in base]), median([r["hwm"] for r in base])
        paired_t = median([r["seconds"] / b["seconds"] for r, b in zip(results, base, strict=True)])
        paired_m = median([r["hwm"] / b["hwm"] for r, b in zip(results, base, strict=True)])
        rows.append(
            [
                f"{n} granules, {latency * 1000:.0f} ms" + (f", {arenas} arenas" if arenas else ""),
                name,
                f"{t:.2f} s",
                "" if name == "local" else f"{t / t0:.2f}x ({paired_t:.2f}x)",
                f"{m / 1e6:.0f} MB",
                "" if name == "local" else f"{m / m0:.2f}x ({paired_m:.2f}x)",
                f"{median([r['system'] for r in results]):.2f} s",
            ]
        )
    return rows


def main() -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--granules", type=int, nargs="+", default=[8, 16])
    parser.add_argument("--latency", type=float, nargs="+", default=[0.05, 0.2])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--arena-max", type=int, default=None, help="also with MALLOC_ARENA_MAX set to this")
    args = parser.parse_args()
    rows = []
    for n in args.granules:
        for latency in args.latency:
            rows += compare(n, latency, args.repeats, None)
            if args.arena_max:
                rows += compare(n, latency, args.repeats, args.arena_max)
    head = ["case", "give back", "time", "/ local (paired)", "peak memory", "/ local (paired)", "caller's system CPU"]
    return f"{machine()}\n\n" + table(rows, head)


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--run":
        _run(sys.argv[2])
    else:
        print(main())
