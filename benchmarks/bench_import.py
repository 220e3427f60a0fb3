"""Import cost: ``import is2grid`` (and the engines xarray loads) against ``import xarray`` alone.

Each measurement is a fresh interpreter (nothing cached in ``sys.modules``); the times are taken inside it
with ``time.perf_counter`` around the imports, so interpreter start-up is left out. Byte-code caching is on
(as on a user's machine; one warm-up run per case writes the ``.pyc`` files), whatever
``PYTHONDONTWRITEBYTECODE`` says. Medians of ``--runs``, the cases interleaved.

Usage: ``python benchmarks/bench_import.py [--runs 15]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import machine

CASES = {
    "import xarray": "import xarray",
    "import xarray, is2grid": "import xarray\nimport is2grid",
    "xarray + is2grid's engines (what open_dataset loads)": "import xarray\nimport is2grid.backend.entrypoints",
    "xarray + is2grid + the gridding modules": "import xarray\nimport is2grid\nimport is2grid.grid.gridding",
}
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def timed(code: str) -> float:
    program = f"import time\nt = time.perf_counter()\n{code}\nprint(time.perf_counter() - t)"
    out = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True, env=ENV).stdout
    return float(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    print(f"# import cost, median of {args.runs} fresh interpreters; {machine()}")
    results = {}
    for code in CASES.values():  # warm-up: byte code written
        timed(code)
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
