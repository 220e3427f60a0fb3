"""Shared helpers: the machine description, interleaved repeated timing, peak traced memory, tables."""

from __future__ import annotations

import gc
import os
import platform
import statistics
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

CACHE = Path(os.environ.get("IS2GRID_BENCH_CACHE", Path(__file__).parent / ".cache"))


def machine() -> str:
    import numpy as np

    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(next(x for x in Path("/proc/meminfo").read_text().splitlines() if x.startswith("MemTotal")).split()[1])
        mem = f", {kb / 1024**2:.0f} GiB RAM"
    except (OSError, StopIteration):
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores{mem}; {platform.system()} {platform.release()}; "
        f"Python {platform.python_version()}, numpy {np.__version__}"
    )


def timed(functions: dict[str, Callable[[], object]], repeats: int) -> dict[str, list[float]]:
    """Run every function ``repeats`` times, interleaved (a, b, c, a, b, c...), so drift hits all alike."""
    times: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(repeats):
        for name, fn in functions.items():
            gc.collect()
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def peak_memory(fn: Callable[[], object]) -> int:
    """Peak bytes allocated through Python's allocators (numpy included) while ``fn`` runs.

    tracemalloc slows allocation-heavy pure-Python code (h5coro) by orders of magnitude: use
    :func:`peak_rss_in_subprocess` for readers.
    """
    gc.collect()
    tracemalloc.start()
    try:
        result = fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    del result
    return peak


def peak_rss_in_subprocess(script: str, *args: str) -> int:
    """Growth of the peak resident set (bytes) of a fresh interpreter running ``script --memory-of ...``."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-W", "ignore", script, *args], capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1])


def _high_water_rss() -> int:
    # VmHWM belongs to this address space, so unlike ru_maxrss it is not inherited from a large parent
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def rss_growth(fn: Callable[[], object]) -> int:
    """In this process: peak resident set after ``fn`` minus the peak before it."""
    gc.collect()
    before = _high_water_rss()
    result = fn()
    after = _high_water_rss()
    del result
    return after - before


def median(values: list[float]) -> float:
    return statistics.median(values)


def table(rows: list[list[str]], header: list[str]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)
