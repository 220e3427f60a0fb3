"""glibc's malloc: few arenas for the command line, free memory given back in runs in flight, Dask workers' heap.

**Arenas (the command line).** glibc gives each new thread that allocates an arena of its own, up to
eight per core, and memory freed in one arena serves only that arena's threads. A run with granules in
flight allocates on many threads (the granules' openers, the HTTP client's runtime, the caller gridding),
so each arena grows to what its own threads once held, and the process's peak to the sum of those peaks:
1.45x a local run's peak against 1.2x with two arenas (benchmarks/bench_flight.py, 8 full-size granules
50-200 ms away), at the same speed. The ``is2grid`` command, whose process is its own, caps the arenas at
:data:`ARENAS` before it starts any work, as ``MALLOC_ARENA_MAX=2`` would. A library does not cap its
caller's arenas: in a notebook, ``MALLOC_ARENA_MAX=2`` in the kernel's environment does the same.

**Giving back (runs in flight).** The threads that open and fetch granules allocate in arenas the thread
that grids does not take from, and memory freed into an arena serves only its threads. Each arena keeps
what it once held, and the heap fragments around what lives on (the result's arrays), so a remote run's
peak grew with the run, well beyond what it had fetched ahead: 16 full-size granules 50 ms away peaked at
1.31-1.33x the local run. :func:`give_back` (glibc's ``malloc_trim``) returns the free pages of every arena
to the system; a run in flight calls it once, after its last granule, before the caller merges the last
results, where a long run peaks (16 granules: 1.02-1.03x the local run's peak). It used to run after every
granule that fetched ahead, which also gave back the free pages of the gridding thread's own arena: the
next gridding touched them again, zero-filled, in the thread the run waits for (its system CPU time went
from about 0.2 s to 0.35-0.4 s for 8 granules), and that cost 4-17 % of a remote run's time
(benchmarks/bench_give_back.py, docs/benchmarks.md). glibc cannot trim one arena and not another. It
changes no setting, so a library call may do it in its caller's process; ``IS2GRID_MALLOC_TUNING=0`` turns
it off.

**Arena tops (runs in flight).** ``malloc_trim`` gives back free blocks inside every arena, but not the
free *top* of an arena other than the main one (glibc's ``mtrim`` trims only the main arena's top). Such a
top is given back only when a block is freed into it and it exceeds the *trim threshold*, which rises with
the mmap threshold to 64 MiB, the size of a whole thread heap: so, once a process has freed one large
array, another thread's arena keeps the top it grew to for good. With granules opened and fetched on a
dozen threads those tops were most of what a remote run held beyond a local one after giving back. While a
run is in flight, :func:`tops_trimmed` sets the trim threshold to :data:`TOP_KEPT` and the mmap threshold
to the 32 MiB where glibc's own rise ends; once the last such run ends the trim threshold goes to the 64
MiB that rise would have reached. Measured with giving back (side runs on benchmarks/bench_flight.py's
server, three interleaved repeats, full-size granules with DMR++ sidecars): 8 granules 50 ms away peaked
at 1.21-1.23x the local run against 1.37-1.40x, 16 granules at 0.99x against 1.15x, and 8 granules 200 ms
away at 1.22x against 1.36x, at the same speed. Settings the environment gives
(``MALLOC_TRIM_THRESHOLD_``, ``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TOP_PAD_``, a ``GLIBC_TUNABLES`` malloc
setting; a Dask worker's nanny sets the first) are left as they are.

**The mmap threshold (Dask workers).** glibc serves an allocation above its *mmap threshold* with a memory
map of its own, which the kernel zero-fills page by page on first touch and which is unmapped again on
``free``. The threshold starts at 128 KiB and normally rises by itself (up to 32 MiB) as soon as a large
block is freed, so a process that makes arrays of the same sizes again and again soon takes them from its
heap. Setting ``MALLOC_TRIM_THRESHOLD_``, as Dask's nanny does for every worker process it starts (65536, to
give memory back to the system sooner), switches that rise off: every array above 128 KiB is then a fresh
map. Gridding a full-size granule makes a few hundred MB of such arrays; in a Dask worker that cost 15-23 %
of the time per granule (measured in ``benchmarks/bench_scale.py``). In those workers is2grid puts the
threshold where glibc would have taken it by itself, once per process; the trim threshold stays Dask's.
"""

from __future__ import annotations

import contextlib
import functools
import os
import platform
import sys
import threading
from collections.abc import Iterator
from typing import Any

#: where glibc's own dynamic threshold stops rising on 64-bit systems (DEFAULT_MMAP_THRESHOLD_MAX)
MMAP_THRESHOLD = 32 * 1024 * 1024
_M_TRIM_THRESHOLD = -1  # mallopt's parameter numbers, from <malloc.h>
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
#: free top an arena keeps while a run is in flight (beyond it, the top goes back to the system as it is freed)
TOP_KEPT = 4 * 1024 * 1024
#: environment variables that set glibc's thresholds: where one is set, is2grid leaves the thresholds alone
THRESHOLD_SETTINGS = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_")
#: malloc arenas in a process the ``is2grid`` command owns
ARENAS = 2

_done = False
_runs = 0  # runs in flight inside tops_trimmed
_lock = threading.Lock()


def in_dask_worker_with_fixed_threshold() -> bool:
    """Whether this is a Dask worker process whose environment switched glibc's rising threshold off."""
    # a worker has imported distributed; without the [dask] extra it is not there at all
    if "MALLOC_TRIM_THRESHOLD_" not in os.environ or sys.modules.get("distributed") is None:
        return False
    from distributed import get_worker

    try:
        get_worker()
    except ValueError:
        return False
    return True


def fit_for_dask_worker(in_worker: bool = False) -> bool:
    """In a Dask worker (see the module docs), raise glibc's mmap threshold to 32 MiB, once per process.

    Does nothing elsewhere, on systems without glibc, or with ``IS2GRID_MALLOC_TUNING=0``. ``in_worker``:
    the caller knows this is a worker process (a worker plugin's setup, where Dask's ``get_worker`` does not
    answer yet); the nanny's fixed threshold is still required.

    Returns
    -------
    bool
        Whether this process's threshold has been set by is2grid (now or before).
    """
    global _done
    with _lock:
        if _done:
            return True
        if not _tunable():
            return False
        fixed = "MALLOC_TRIM_THRESHOLD_" in os.environ
        if not (fixed and in_worker) and not in_dask_worker_with_fixed_threshold():
            return False
        _done = bool(_libc().mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))
        return _done


def fewer_arenas(arenas: int = ARENAS) -> bool:
    """In a process is2grid owns (the command line), at most ``arenas`` glibc malloc arenas from now on.

    Does nothing where the environment says otherwise (``MALLOC_ARENA_MAX`` set, or
    ``IS2GRID_MALLOC_TUNING=0``) or without glibc. Arenas made before stay; threads started later share.

    Returns
    -------
    bool
        Whether the cap was set.
    """
    if not _tunable() or "MALLOC_ARENA_MAX" in os.environ:
        return False
    return bool(_libc().mallopt(_M_ARENA_MAX, int(arenas)))


def give_back() -> bool:
    """Return the free memory of every glibc malloc arena to the system (``malloc_trim(0)``).

    Does nothing without glibc or with ``IS2GRID_MALLOC_TUNING=0``.

    Returns
    -------
    bool
        Whether memory was looked for to give back.
    """
    if not _tunable():
        return False
    _libc().malloc_trim(0)
    return True


@contextlib.contextmanager
def tops_trimmed() -> Iterator[bool]:
    """While the block runs, an arena's free top beyond :data:`TOP_KEPT` goes back to the system as it is freed.

    For runs in flight (see the module docs). Runs may nest or overlap: the thresholds go back to where
    glibc's own rise ends (mmap 32 MiB, trim 64 MiB) once the last one ends. Does nothing without glibc,
    with ``IS2GRID_MALLOC_TUNING=0``, or where the environment sets a threshold (a Dask worker's nanny does).

    Yields
    ------
    bool
        Whether the thresholds are is2grid's while the block runs.

    Examples
    --------
    >>> with tops_trimmed():
    ...     pass
    """
    global _runs
    with _lock:
        tuned = _runs > 0 or _thresholds_free()
        if tuned:
            if _runs == 0:
                _libc().mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
                _libc().mallopt(_M_TRIM_THRESHOLD, TOP_KEPT)
            _runs += 1
    try:
        yield tuned
    finally:
        if tuned:
            with _lock:
                _runs -= 1
                if _runs == 0:
                    _libc().mallopt(_M_TRIM_THRESHOLD, 2 * MMAP_THRESHOLD)


def _thresholds_free() -> bool:
    """Whether is2grid may set glibc's thresholds: its malloc, and nothing in the environment sets them."""
    if not _tunable() or any(name in os.environ for name in THRESHOLD_SETTINGS):
        return False
    return "glibc.malloc." not in os.environ.get("GLIBC_TUNABLES", "")


@functools.cache
def _libc() -> Any:
    import ctypes

    return ctypes.CDLL(None)


def _tunable() -> bool:
    """Whether this is glibc's malloc and is2grid may tune it (``IS2GRID_MALLOC_TUNING=0`` says not)."""
    if os.environ.get("IS2GRID_MALLOC_TUNING", "1").strip() == "0":
        return False
    return sys.platform == "linux" and platform.libc_ver()[0] == "glibc"


def _forget_after_fork() -> None:
    global _lock, _runs
    _lock, _runs = threading.Lock(), 0


os.register_at_fork(after_in_child=_forget_after_fork)
