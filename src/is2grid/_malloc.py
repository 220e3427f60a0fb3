"""glibc's malloc: few arenas for the command line, free memory given back in runs in flight, the heap for Dask workers.

**Arenas (the command line).** glibc gives each new thread that allocates an arena of its own, up to
eight per core, and memory freed in one arena serves only that arena's threads. A run with granules in
flight allocates on many threads (the granules' openers, the HTTP client's runtime, the caller gridding),
so each arena grows to what its own threads once held, and the process's peak to the sum of those peaks:
1.45x a local run's peak against 1.2x with two arenas (benchmarks/bench_flight.py, 8 full-size granules
50-200 ms away), at the same speed. The ``is2grid`` command, whose process is its own, caps the arenas at
:data:`ARENAS` before it starts any work, as ``MALLOC_ARENA_MAX=2`` would. A library does not change its
caller's allocator: in a notebook, ``MALLOC_ARENA_MAX=2`` in the kernel's environment does the same.

**Giving back (runs in flight).** The threads that open and fetch granules allocate in arenas the thread
that grids does not take from, and memory freed into an arena serves only its threads. Each arena keeps
what it once held, and the heap fragments around what lives on (the result's arrays), so a remote run's
peak grew with the run, well beyond what it had fetched ahead: 16 full-size granules 50 ms away peaked at
1.31-1.33x the local run. :func:`give_back` (glibc's ``malloc_trim``) returns the free pages of every arena
to the system once a granule that fetched ahead has been gridded: 1.11-1.15x in five interleaved runs,
0.98x with two arenas. It costs 2-3 ms a granule, and the next gridding touches again pages that now come
back zeroed: time went up 5 % (median of the five runs, -3 to +11 %; benchmarks/bench_flight.py,
docs/benchmarks.md). It changes no setting, so a library call may do it in its caller's process;
``IS2GRID_MALLOC_TUNING=0`` turns it off.

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

import functools
import os
import platform
import sys
import threading
from typing import Any

#: where glibc's own dynamic threshold stops rising on 64-bit systems (DEFAULT_MMAP_THRESHOLD_MAX)
MMAP_THRESHOLD = 32 * 1024 * 1024
_M_MMAP_THRESHOLD = -3  # mallopt's parameter numbers, from <malloc.h>
_M_ARENA_MAX = -8
#: malloc arenas in a process the ``is2grid`` command owns
ARENAS = 2

_done = False
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
    global _lock
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_after_fork)
