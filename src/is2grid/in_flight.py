"""Granules in flight: the next granules are opened and fetched while the current ones are gridded.

A remote granule costs a chain of round trips (superblock, groups, object headers, chunk indexes,
chunks) during which one process has nothing to compute. :func:`in_order` runs the first stage of
up to ``granules`` items at once on threads (open a granule, fetch its compressed chunks) and the
second stage (decode, grid) one after another in the caller's thread, handing the results on in the
order given. What is merged, and in what order, does not change: results are identical bit for bit,
and memory holds what the sequential run holds, plus the compressed bytes of the granules fetched ahead.
While granules are in flight, the arenas of the threads that open and fetch them do not keep a large
free top (:func:`is2grid._malloc.tops_trimmed`), and once the last granule has been gridded the free
memory those threads left goes back to the system (:func:`is2grid._malloc.give_back`), before the
caller merges the last results, where a long run peaks. Not after every granule: that also gave back
the pages the gridding had just freed and would take again, which the next gridding then touched
afresh, zero-filled (4-17 % of a remote run's time; benchmarks/bench_give_back.py).

Those bytes are bounded, not only the count: before fetching its chunks a granule asks the run's
:class:`ByteBudget` (through :func:`fetching`) for their size at most (its arrays' bytes as stored,
uncompressed), in the order given, and the calling thread gives them back once it has gridded that
granule. A granule larger than the whole budget waits until it is alone, then goes, so the run never
stalls. Nor does a granule fetch further ahead than the run needs: the budget's *lead* follows how long
a fetch takes against a gridding.

The granules in flight share one process's CPU and one link, and the caller waits for the first of
them: so the earliest go first. Their round trips overlap, but their CPU work (parsing, which takes the
GIL) goes to the earliest granule that wants it (:mod:`is2grid._turns`), and at most
:data:`FETCHES_AT_ONCE` fetch their chunks at once, started in order (:class:`Turns`), so the first
granule's bytes are not shared out with the next ones'.
"""

from __future__ import annotations

import contextvars
import logging
import math
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Generic, TypeVar

from is2grid import _malloc, _turns, memory
from is2grid._turns import fetching

__all__ = [
    "ByteBudget",
    "Turns",
    "default_bytes",
    "default_granules",
    "fetching",
    "in_order",
    "windowed",
]

log = logging.getLogger("is2grid.in_flight")

T = TypeVar("T")
S = TypeVar("S")
R = TypeVar("R")

#: Granules opened and fetched at once over a network by default: a granule's chain of about
#: 15 round trips hides behind the gridding of the granules before it.
REMOTE_GRANULES = 8
#: Most bytes of compressed chunks fetched ahead by default (and at most 1/16 of the memory available).
MAX_BYTES = 256 * 1024**2
#: Granules fetching their chunks at once in a run in flight: enough to cover a round trip of 200 ms
#: at a full-size granule's gridding pace (measured in benchmarks/bench_flight.py), few enough that the
#: first granule's bytes are not shared out among all the granules in flight.
FETCHES_AT_ONCE = 3


class ByteBudget:
    """Bytes that granules fetched ahead may hold at once, taken strictly in the order given.

    Taking turns in order means the granule the caller waits for next has always had its turn (or
    is first in line), so a full budget can only wait for granules that will be handed back.

    Bytes are not all that is bounded: a granule fetches only once it is among the next ``lead`` granules
    not yet gridded, so that no more is fetched ahead than the network's delay needs. The lead follows
    the run (:meth:`observe`): the time a granule's fetch takes over the time the caller takes to grid
    one, plus the granule being gridded and one to spare. Over a link 50 ms away that is three; 200 ms
    away, four to six (full-size granules, benchmarks/bench_flight.py).

    Parameters
    ----------
    limit : int
        Bytes. A granule asking for more than ``limit`` waits until nothing is held, then goes.
    lead : int or None
        Granules, counted from the first not yet gridded, that may hold bytes, until the run has timed
        a fetch and a gridding (default: :data:`FETCHES_AT_ONCE`). None: no such bound.
    most : int, optional
        The largest lead the run's timings may ask for (default: no bound).

    Examples
    --------
    >>> budget = ByteBudget(100)
    >>> budget.acquire(0, 60), budget.in_use
    (True, 60)
    >>> budget.release(0)
    60
    >>> budget.peak, budget.in_use
    (60, 0)

    A fetch of 0.3 s and a gridding of 0.1 s: three granules fetch while one is gridded, and one to spare.

    >>> budget.observe(fetched=0.3); budget.observe(gridded=0.1)
    >>> budget.lead
    5
    """

    def __init__(self, limit: int, lead: int | None = FETCHES_AT_ONCE, most: int | None = None):
        self.limit = int(limit)
        self.lead = lead
        self.most = most
        self.gridders = 1  # granules gridded at once (set by :func:`in_order`)
        self.in_use = 0
        self.peak = 0
        self.peak_holders = 0
        self._held: dict[int, int] = {}
        self._turn = 0
        self._passed: set[int] = set()
        self._gridded: set[int] = set()
        self._low = 0  # the first order not yet gridded
        self._fetches: list[float] = []
        self._griddings: list[float] = []
        self._closed = False
        self._cond = threading.Condition()

    def acquire(self, order: int, nbytes: int) -> bool:
        """Wait for the turn of ``order`` and room for ``nbytes``, then hold them (True).

        False, at once, once the run has stopped (:meth:`close`).
        """
        nbytes = max(int(nbytes), 0)
        with self._cond:
            while (
                order != self._turn
                or (self._held and self.in_use + nbytes > self.limit)
                or (self.lead is not None and order >= self._low + self.lead)
            ):
                if self._closed:
                    return False
                self._cond.wait()
            if self._closed:
                return False
            self._held[order] = nbytes
            self.in_use += nbytes
            self.peak = max(self.peak, self.in_use)
            self.peak_holders = max(self.peak_holders, len(self._held))
            self._pass(order)
            return True

    def pass_turn(self, order: int) -> None:
        """``order`` will hold nothing (it failed, or it needs no fetch ahead): the next may go."""
        with self._cond:
            if order >= self._turn and order not in self._held:
                self._pass(order)

    def release(self, order: int) -> int:
        """``order`` has been gridded (or will not be): give back what it holds, and say how much (0 if nothing)."""
        with self._cond:
            held = self._held.pop(order, 0)
            self.in_use -= held
            self._gridded.add(order)
            while self._low in self._gridded:
                self._gridded.discard(self._low)
                self._low += 1
            self._cond.notify_all()
            return held

    def observe(self, fetched: float | None = None, gridded: float | None = None) -> None:
        """A granule's fetch took ``fetched`` seconds, or its gridding ``gridded``: the lead follows.

        The lead is the granules whose fetches overlap one gridding (the medians' ratio, rounded up), the
        ``gridders`` granules being gridded at once (``gridded`` is shared among them), and one to spare,
        as fetches vary with what shares the link and the cores. At most ``most``.
        """
        with self._cond:
            if fetched is not None:
                self._fetches.append(fetched)
            if gridded is not None:
                self._griddings.append(gridded)
            if self.lead is None or not self._fetches or not self._griddings:
                return
            pace = statistics.median(self._griddings) / self.gridders  # a granule gridded every ``pace`` seconds
            lead = self.gridders + max(1, math.ceil(statistics.median(self._fetches) / max(pace, 1e-3))) + 1
            self.lead = lead if self.most is None else min(lead, self.most)
            self._cond.notify_all()

    def close(self) -> None:
        """The run has stopped: granules still waiting go on without fetching ahead."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def _pass(self, order: int) -> None:
        self._passed.add(order)
        while self._turn in self._passed:
            self._passed.discard(self._turn)
            self._turn += 1
        self._cond.notify_all()


class Turns:
    """Turns started in order, ``width`` at most at once: ``order`` goes once every earlier one has started.

    Granules fetching their chunks: up to :data:`FETCHES_AT_ONCE` at once, the earliest first. An order
    that will not take its turn (it failed before, or has nothing to fetch) is :meth:`done` all the same,
    so the next ones never wait for it.

    Examples
    --------
    >>> turns = Turns(width=2)
    >>> turns.wait(0), turns.wait(1)  # both may run: 2 at once
    (True, True)
    >>> turns.done(0); turns.done(1)
    >>> turns.wait(2), turns.running
    (True, 1)
    """

    def __init__(self, width: int = 1):
        self.width = max(1, int(width))
        self.running = 0
        self._next = 0  # the first order not yet started (or passed)
        self._started: set[int] = set()
        self._finished: set[int] = set()
        self._closed = False
        self._cond = threading.Condition()

    def wait(self, order: int) -> bool:
        """Wait until ``order`` may go (True); False at once once the run has stopped (:meth:`close`)."""
        with self._cond:
            if order in self._started:
                return True
            while order != self._next or self.running >= self.width:
                if self._closed:
                    return False
                self._cond.wait()
            self._started.add(order)
            self.running += 1
            self._advance()
            return True

    def done(self, order: int) -> None:
        """``order`` has finished its turn, or will not take it."""
        with self._cond:
            if order in self._finished:
                return
            self._finished.add(order)
            if order in self._started:
                self.running -= 1
            self._advance()

    def close(self) -> None:
        """The run has stopped: every order still waiting goes on at once."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def _advance(self) -> None:
        while self._next in self._started or self._next in self._finished:
            self._next += 1
        self._cond.notify_all()


def default_granules(remote: bool) -> int:
    """Granules in flight by default: :data:`REMOTE_GRANULES` over a network, one for local files.

    Local reads keep every core busy already (inflate runs on threads): more at once only adds memory.
    """
    return REMOTE_GRANULES if remote else 1


def default_bytes() -> int:
    """Bytes fetched ahead by default: 256 MiB, or 1/16 of the memory available if less."""
    return int(min(MAX_BYTES, memory.available_memory() / 16))


class _Ahead(Generic[S]):
    __slots__ = ("error", "value")

    def __init__(self, value: S | None, error: BaseException | None):
        self.value, self.error = value, error


def in_order(
    first: Callable[[T], S],
    then: Callable[[T, S | None, BaseException | None], R],
    items: Iterable[T],
    granules: int,
    budget: ByteBudget | None = None,
    discard: Callable[[S], object] | None = None,
    workers: int = 1,
) -> Iterator[tuple[T, R]]:
    """``(item, then(item, first(item), None))`` in the order of ``items``; ``first`` of the next ones runs ahead.

    Parameters
    ----------
    first : callable
        The first stage (open, fetch), run on threads for up to ``granules`` items at once, the CPU
        work of earlier items first; it may hold part of ``budget`` to fetch (:func:`fetching`).
    then : callable
        The second stage, run here in order with the item, the first stage's result, and the
        exception the first stage raised (or None). What it returns is handed on.
    items : iterable
        Taken lazily, at most ``granules`` ahead of what has been handed on.
    granules : int
        Items in flight at most; 1 runs both stages here, one item after another.
    budget : ByteBudget, optional
        Shared by the items' first stages (default: :func:`default_bytes`).
    discard : callable, optional
        Called with the first stage's result of an item never handed on (to close it).
    workers : int
        Second stages run at once, on threads of their own; their results are still handed on in
        order. 1 (the default): one after another in the caller's thread, as a sequential run.

    Notes
    -----
    A consumer that stops early (an error, a ``break``) cancels the items not started and waits
    for the ones started, which stop waiting for the budget; their results are discarded.

    Examples
    --------
    >>> def then(item, squared, error):
    ...     return squared + 1
    >>> [r for _, r in in_order(lambda x: x * x, then, range(5), granules=3)]
    [1, 2, 5, 10, 17]
    """
    if granules <= 1:
        for item in items:
            try:
                value = first(item)
            except Exception as err:
                yield item, then(item, None, err)
            else:
                yield item, then(item, value, None)
        return
    with _malloc.tops_trimmed():  # what the opening and fetching threads free goes back, not only to their arenas
        yield from _ahead(first, then, items, granules, budget, discard, workers)


def _ahead(
    first: Callable[[T], S],
    then: Callable[[T, S | None, BaseException | None], R],
    items: Iterable[T],
    granules: int,
    budget: ByteBudget | None,
    discard: Callable[[S], object] | None,
    workers: int,
) -> Iterator[tuple[T, R]]:
    """:func:`in_order` with more than one granule in flight."""
    budget = budget or ByteBudget(default_bytes(), most=granules)
    budget.gridders = max(1, workers)
    cpu, fetches = _turns.Priority(), Turns(FETCHES_AT_ONCE)
    source = iter(items)
    pending: deque[tuple[int, T, Future[_Ahead[S]]]] = deque()
    positions = iter(range(1 << 62))

    def stage_one(order: int, item: T) -> _Ahead[S]:
        _turns.TICKET.set(_turns.Ticket(order, budget, fetches))
        try:
            with _turns.turn(cpu, order):  # its CPU work before that of later granules
                return _Ahead(first(item), None)
        except Exception as err:
            return _Ahead(None, err)
        finally:  # if it did not take its turns (it failed, or needed no fetch ahead)
            budget.pass_turn(order)
            fetches.done(order)

    owed = threading.Event()  # a granule that fetched ahead has been gridded since memory last went back
    exhausted = threading.Event()  # every item has been taken from ``items``

    def finish(order: int, item: T, ahead: _Ahead[S]) -> R:
        start = time.perf_counter()
        try:
            result = then(item, ahead.value, ahead.error)
        finally:  # its bytes are free once it is gridded: the next granule may fetch while this waits its turn
            if budget.release(order):
                owed.set()
        # what the opening and fetching threads freed sits in arenas the gridding does not take from: it goes
        # back with the last granule, not after each (that gave back the gridding's own free pages too)
        if owed.is_set() and exhausted.is_set() and not pending:
            owed.clear()
            _malloc.give_back()
        if ahead.error is None:
            budget.observe(gridded=time.perf_counter() - start)
        return result

    def submit(pool: ThreadPoolExecutor) -> bool:
        item = next(source, _END)
        if item is _END:
            exhausted.set()
            return False
        order = next(positions)
        context = contextvars.copy_context()
        pending.append((order, item, pool.submit(context.run, stage_one, order, item)))
        return True

    pool = ThreadPoolExecutor(max_workers=granules, thread_name_prefix="is2grid-granule")
    # one second stage at a time runs here, in the caller's thread, as a run one after another does
    second = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="is2grid-second") if workers > 1 else None
    started: deque[tuple[int, T, Future[R], _Ahead[S]]] = deque()
    try:
        while len(pending) < granules and submit(pool):
            pass
        while second is None and pending:
            order, item, future = pending.popleft()
            ahead = future.result()
            submit(pool)
            try:
                result = finish(order, item, ahead)
            except BaseException:
                if discard is not None and ahead.value is not None:
                    discard(ahead.value)
                raise
            yield item, result
        while pending or started:
            assert second is not None
            while pending and len(started) < max(1, workers):  # the next second stages, in order
                order, item, future = pending.popleft()
                ahead = future.result()
                started.append((order, item, second.submit(finish, order, item, ahead), ahead))
                submit(pool)
            order, item, done, _ = started.popleft()
            try:
                result = done.result()
            finally:
                budget.release(order)
            yield item, result
    finally:
        for _, _, done, ahead in started:
            if done.cancel() and discard is not None and ahead.value is not None:
                discard(ahead.value)
        if second is not None:
            second.shutdown(wait=True)
        for _, _, future in pending:
            future.cancel()
        budget.close()
        cpu.close()
        fetches.close()
        pool.shutdown(wait=True)
        for order, _, _, _ in started:
            budget.release(order)
        for order, _, future in pending:
            budget.release(order)
            left = None if future.cancelled() else future.result()
            if discard is not None and left is not None and left.value is not None:
                discard(left.value)
        log.info(
            "granules in flight: at most %d fetched ahead at once, %.0f MB held at most (budget %.0f MB, lead %s)",
            budget.peak_holders,
            budget.peak / 1e6,
            budget.limit / 1e6,
            budget.lead,
        )


_END: Any = object()


def windowed(items: list[T], size: int) -> list[list[T]]:
    """``items`` in consecutive runs of at most ``size``, as few runs as that allows, their lengths within one.

    Even runs keep a cluster's workers busy to the end: 16 granules in runs of 3 were five of 3 and one of 1,
    so one of two workers gridded 9 while the other had 7.

    >>> windowed([1, 2, 3, 4, 5], 2)
    [[1], [2, 3], [4, 5]]
    >>> [len(run) for run in windowed(list(range(16)), 3)]
    [2, 3, 3, 2, 3, 3]
    """
    n = len(items)
    runs = -(-n // max(1, size))
    return [items[i * n // runs : (i + 1) * n // runs] for i in range(runs)]
