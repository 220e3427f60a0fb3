"""What a Dask worker that grids needs, set up once per worker process, the workers that join later included.

``grid_granules(..., client=...)`` registers :class:`WorkerSetup` with the client: Dask runs its
``setup`` on every worker alive then and on every worker that joins afterwards (an adaptive cluster,
Coiled scaling up), so no task sets anything process-wide and no worker misses the credentials.
Imported only when a client is given (it needs distributed).

On Python 3.11 the setup also stops the worker's statistical profiler. Every 10 ms it calls
``sys._current_frames()``, which holds the interpreter's thread-list lock while it allocates; if that
allocation starts a garbage collection that gives up the GIL, and another thread holding the GIL starts
or ends a thread (which takes the same lock), neither can go on: the worker hangs for good
(python/cpython#106883 and #116969, fixed in 3.12 only; dask/distributed#8616; distributed turned off only
its event-loop profiler on 3.11). Gridding starts and ends threads all the time (a granule's fetches), and
a LocalCluster worker hung this way in is2grid's own benchmark. The dashboard's "Profile" page stays empty
on 3.11 for that reason.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from distributed import WorkerPlugin

from is2grid import _malloc
from is2grid.io import credentials as credentials_module

__all__ = ["WorkerSetup"]

log = logging.getLogger("is2grid.workers")

#: whether sys._current_frames() can deadlock against threads starting and ending (see the module docs)
PROFILER_CAN_DEADLOCK = sys.version_info < (3, 12)


class WorkerSetup(WorkerPlugin):
    """Install the credentials and glibc's allocator threshold in a worker process.

    Parameters
    ----------
    credentials : optional
        ``Credentials.portable()``: pickles with its secrets, registered on the worker by key.
    """

    name = "is2grid-setup"

    def __init__(self, credentials: Any = None):
        self.credentials = credentials

    def setup(self, worker) -> None:
        """Run by Dask on each worker as it starts (or when the plugin is registered)."""
        if self.credentials is not None:
            credentials_module.register(self.credentials)
        _malloc.fit_for_dask_worker(in_worker=True)
        if PROFILER_CAN_DEADLOCK and stop_profiler(worker):
            log.info("%s: Dask's worker profiler stopped (it can hang a worker on Python 3.11)", worker.address)


def stop_profiler(worker: Any) -> bool:
    """Stop the statistical profiler of a Dask ``worker`` (see the module docs); whether it was running."""
    stopped = False
    for name in ("profile", "profile-cycle"):
        callback = worker.periodic_callbacks.pop(name, None)
        if callback is not None:
            callback.stop()
            stopped = True
    return stopped
