"""How many threads is2grid's own CPU work may use in this process, and the pool they run on.

The pool is made on first use, kept for the process (a pool per call started its threads again for every
granule, each start a wait for the GIL while other threads parse or fetch), and forgotten in a forked
child (its threads do not exist there).
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait

# Read once, as BLAS libraries do: dask's nanny sets OMP_NUM_THREADS=1 for the worker processes it
# starts, and leaves it set in the process that started them, where is2grid keeps its threads.
_OMP_NUM_THREADS = os.environ.get("OMP_NUM_THREADS", "")


def count() -> int:
    """Threads for is2grid's own CPU work (inflate, projection) in this process.

    ``IS2GRID_NUM_THREADS`` if set, else ``OMP_NUM_THREADS`` as it was when is2grid was imported
    (dask's nanny sets it to 1 in every worker process, so that processes sharing a machine do not
    oversubscribe its cores), else one per core, at least two.

    Examples
    --------
    >>> import os
    >>> os.environ["IS2GRID_NUM_THREADS"] = "3"
    >>> count()
    3
    >>> del os.environ["IS2GRID_NUM_THREADS"]
    """
    for value in (os.environ.get("IS2GRID_NUM_THREADS", ""), _OMP_NUM_THREADS):
        if value.strip().isdigit() and int(value) > 0:
            return int(value)
    return max(2, os.cpu_count() or 2)


_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def pool() -> ThreadPoolExecutor:
    """The process's pool for is2grid's CPU work (:func:`count` threads)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=count(), thread_name_prefix="is2grid-cpu")
        return _POOL


def _forget_pool_after_fork() -> None:
    global _POOL, _POOL_LOCK
    _POOL, _POOL_LOCK = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_pool_after_fork)


def each(n: int, work: Callable[[int], None], caller_works: bool = True) -> None:
    """Run ``work(0)`` .. ``work(n - 1)`` on the pool's threads and the calling thread.

    The threads take the next index from one shared counter, so they all finish within one item of
    each other (fixed batches left one core idle at the end of every read), and the caller works
    instead of waiting. The first error stops the others at their next item and is raised here.
    ``caller_works=False`` keeps the work on the pool (for callers that are many threads at once,
    such as asyncio's: the pool then bounds how many threads decode).

    Examples
    --------
    >>> squares = [0] * 5
    >>> def work(i):
    ...     squares[i] = i * i
    >>> each(5, work)
    >>> squares
    [0, 1, 4, 9, 16]
    """
    if n <= 0:
        return
    threads = min(count(), n)
    if threads <= 1 and caller_works:
        for i in range(n):
            work(i)
        return
    counter = itertools.count()  # next() on it is atomic under the GIL
    failed = threading.Event()

    def worker() -> None:
        for i in counter:
            if i >= n or failed.is_set():
                return
            try:
                work(i)
            except BaseException:
                failed.set()
                raise

    helpers = [pool().submit(worker) for _ in range(max(1, threads - caller_works))]
    try:
        if caller_works:
            worker()
    finally:
        wait(helpers)
    for future in helpers:
        future.result()
