"""Turns of the granules in flight: the CPU to the earliest granule, and each granule's turn to fetch.

Granules in flight are opened on threads of their own. Their round trips overlap, but parsing a header
or a DMR++ sidecar takes the GIL, and eight threads sharing it round-robin all finish together, the
first as late as the last, while the caller waits for the first. A :class:`Priority` gives the CPU work of
those threads to the earliest granule that wants it; a thread gives its turn up while it waits on the
network (:func:`waiting`), so a granule that waits for bytes never holds the others back.

Before a granule's chunks are fetched ahead, :func:`fetching` waits for its share of the run's byte budget
and its turn to fetch (:mod:`is2grid.in_flight` makes both). It lives here, below the backend, because the
backend itself asks for it when it can fetch a granule's chunks in the same round trip as its orbit_info.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import threading
import time
from collections.abc import Iterator
from typing import Any

__all__ = ["Priority", "Ticket", "fetching", "turn", "waiting"]


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


@dataclasses.dataclass
class Ticket:
    """What the first stage of one granule shares with the others of its run in flight.

    ``budget`` and ``fetches`` are the run's :class:`is2grid.in_flight.ByteBudget` and
    :class:`is2grid.in_flight.Turns`; ``holding``: the granule has its bytes (it asks once).
    """

    order: int
    budget: Any
    fetches: Any
    holding: bool = False


#: the ticket of the granule the current thread opens for a run in flight; unset otherwise
TICKET: contextvars.ContextVar[Ticket | None] = contextvars.ContextVar("is2grid_in_flight", default=None)


@contextlib.contextmanager
def fetching(nbytes: int) -> Iterator[bool]:
    """In the first stage of a run in flight: wait for room for ``nbytes`` and a turn to fetch; True.

    The bytes stay held until the granule has been gridded; the turn to fetch ends with the block. A
    granule asks for its bytes once: a later block of the same granule (what the first left to fetch)
    goes at once. Outside a run in flight (one granule after another) nothing is held and nothing is
    fetched ahead: yields False.

    Examples
    --------
    >>> with fetching(100) as ahead:
    ...     ahead
    False
    """
    ticket = TICKET.get()
    if ticket is None:
        yield False
        return
    try:
        asked = not ticket.holding
        with waiting():
            if asked:
                ticket.holding = ticket.budget.acquire(ticket.order, nbytes)
            ready = ticket.holding and ticket.fetches.wait(ticket.order)
        start = time.perf_counter()
        yield ready
        if ready and asked:  # the run's lead follows how long a granule's fetch takes
            ticket.budget.observe(fetched=time.perf_counter() - start)
    finally:
        ticket.fetches.done(ticket.order)
