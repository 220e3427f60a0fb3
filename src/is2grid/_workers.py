"""What a Dask worker that grids needs, set up once per worker process, the workers that join later included.

``grid_granules(..., client=...)`` registers :class:`WorkerSetup` with the client: Dask runs its
``setup`` on every worker alive then and on every worker that joins afterwards (an adaptive cluster,
Coiled scaling up), so no task sets anything process-wide and no worker misses the credentials.
Imported only when a client is given (it needs distributed).
"""

from __future__ import annotations

from typing import Any

from distributed import WorkerPlugin

from is2grid import _malloc
from is2grid.io import credentials as credentials_module

__all__ = ["WorkerSetup"]


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
