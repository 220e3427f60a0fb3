"""How many threads is2grid's own CPU work may use in this process."""

from __future__ import annotations

import os

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
