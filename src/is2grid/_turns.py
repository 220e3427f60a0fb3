"""The CPU, earliest granule first: granules opened at once parse in the order they will be gridded.

Granules in flight are opened on threads of their own. Their round trips overlap, but parsing a header
or a DMR++ sidecar takes the GIL, and eight threads sharing it round-robin all finish together, the
first as late as the last, while the caller waits for the first. A :class:`Priority` gives the CPU work of
those threads to the earliest granule that wants it; a thread gives its turn up while it waits on the
network (:func:`waiting`), so a granule that waits for bytes never holds the others back.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Iterator

__all__ = ["Priority", "turn", "waiting"]


class Priority:
    """A lock that goes to the lowest order waiting for it.

    Examples
    --------
    >>> cpu = Priority()
    >>> cpu.acquire(3)
    True
    >>> cpu.release()
    >>> cpu.holder is None
    True
    """

    def __init__(self) -> None:
        self.holder: int | None = None
        self._waiting: set[int] = set()  # a run's granules in flight: a handful
        self._closed = False
        self._cond = threading.Condition()

    def acquire(self, order: int) -> bool:
        """Wait until the lock is free and no lower order waits, then take it (True); False once closed."""
        with self._cond:
            self._waiting.add(order)
            try:
                while not self._closed and (self.holder is not None or min(self._waiting) != order):
                    self._cond.wait()
                if self._closed:
                    return False
                self.holder = order
                return True
            finally:
                self._waiting.discard(order)

    def release(self) -> None:
        with self._cond:
            self.holder = None
            self._cond.notify_all()

    def close(self) -> None:
        """The run has stopped: every thread waiting goes on at once, and none waits again."""
        with self._cond:
            self._closed = True
            self.holder = None
            self._cond.notify_all()


#: (lock, order) while the current thread holds its granule's turn; None otherwise
_HELD: contextvars.ContextVar[tuple[Priority, int] | None] = contextvars.ContextVar("is2grid_turn", default=None)


@contextlib.contextmanager
def turn(cpu: Priority | None, order: int) -> Iterator[None]:
    """Hold ``cpu`` as ``order`` for the block, except while it waits on the network. ``None``: nothing."""
    if cpu is None or not cpu.acquire(order):
        yield
        return
    token = _HELD.set((cpu, order))
    try:
        yield
    finally:
        _HELD.reset(token)
        if cpu.holder == order:
            cpu.release()


@contextlib.contextmanager
def waiting() -> Iterator[None]:
    """Around a blocking wait that is not CPU work (the network, a budget): the turn goes to others meanwhile."""
    held = _HELD.get()
    if held is None or held[0].holder != held[1]:  # no turn, or given up already by an enclosing wait
        yield
        return
    cpu, order = held
    cpu.release()
    try:
        yield
    finally:
        cpu.acquire(order)
