"""Import cost: ``import is2grid`` (and the engines xarray loads) against ``import xarray`` alone.

Each measurement is a fresh interpreter (nothing cached in ``sys.modules``); the times are taken inside it
with ``time.perf_counter`` around the imports, so interpreter start-up is left out. Medians of ``--runs``.

Usage: ``python benchmarks/bench_import.py [--runs 15]``
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys

from common import machine

CASES = {
    "import xarray": "import xarray",
    "import xarray, is2grid": "import xarray\nimport is2grid",
    "xarray + the engines (list_engines)": "import xarray\nxarray.backends.list_engines()",
    "xarray + is2grid + core gridding modules": "import xarray\nimport is2grid\nimport is2grid.grid.gridding",
}


def timed(code: str) -> float:
    program = f"import time\nt = time.perf_counter()\n{code}\nprint(time.perf_counter() - t)"
    out = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True).stdout
    return float(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    print(f"# import cost, median of {args.runs} fresh interpreters; {machine()}")
    results = {}
    for _ in range(args.runs):  # interleaved, so that drift in the machine's speed hits every case alike
        for name, code in CASES.items():
            results.setdefault(name, []).append(timed(code))
    base = statistics.median(results["import xarray"])
    print("| what | median (ms) | ratio to import xarray |")
    print("|---|---|---|")
    for name, times in results.items():
        median = statistics.median(times)
        print(f"| {name} | {median * 1e3:.0f} | {median / base:.2f}x |")


if __name__ == "__main__":
    main()
