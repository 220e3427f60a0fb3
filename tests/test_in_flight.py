"""Granules in flight: the next granules opened and fetched while the current one is gridded.

Results must be the same bit for bit as one after another, memory bounded by bytes, errors handed
on in order, the store's frontier kept, and nothing left running when a run stops.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import warnings

import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

import is2grid
from is2grid import _turns, in_flight, tutorial, workflow
from is2grid.output.zarr_store import GridStore
from tests.servers import Behaviour, serve_scripted

RES = 25000


@pytest.fixture(scope="module")
def days(tmp_path_factory):
    """Eight granules on eight days, two of them reaching past midnight into the next day's bin."""
    root = tmp_path_factory.mktemp("flight")
    return [
        tutorial.write_granule(
            root,
            n_segments=3000,
            rgt=500 + d,
            start=f"2019-09-{10 + d:02d}T{'23:30' if d in (2, 5) else '06:00'}:00",
            seed=d,
        )
        for d in range(8)
    ]


@pytest.fixture(scope="module")
def served(days):
    """The granules behind a loopback HTTP/1.1 Range server adding 20 ms to every request."""
    plan = Behaviour(latency=0.02)
    server, url = serve_scripted(days[0].parent, plan)
    yield plan, [f"{url}/{p.name}" for p in days]
    server.shutdown()


@pytest.fixture
def flight_log(caplog):
    caplog.set_level(logging.INFO, logger="is2grid.in_flight")
    return caplog


def _fetched_ahead(caplog) -> int:
    line = next(r.getMessage() for r in caplog.records if r.name == "is2grid.in_flight")
    return int(line.split("at most ")[1].split()[0])


# ---------------------------------------------------------------- in_order and the byte budget
def test_in_order_hands_results_on_in_order_while_the_next_run_ahead():
    running, most = [0], [0]
    lock = threading.Lock()

    def first(i):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        with _turns.waiting():  # as a read waits for the network (CPU work would go one granule at a time)
            time.sleep(0.02 * random.random())
        with lock:
            running[0] -= 1
        return i * 10

    got = list(in_flight.in_order(first, lambda i, v, e: (v, e), range(20), granules=4))
    assert [item for item, _ in got] == list(range(20))
    assert [v for _, (v, _) in got] == [i * 10 for i in range(20)]
    assert 1 < most[0] <= 4


def test_an_error_in_the_first_stage_is_handed_on_in_its_turn():
    def first(i):
        if i == 2:
            raise ValueError("bad granule 2")
        return i

    got = list(in_flight.in_order(first, lambda i, v, e: repr(e) if e else v, range(5), granules=3))
    assert [r for _, r in got] == [0, 1, "ValueError('bad granule 2')", 3, 4]


def test_a_consumer_that_stops_early_leaves_no_thread_and_closes_what_was_opened():
    closed: list[int] = []
    budget = in_flight.ByteBudget(10)

    def first(i):
        with in_flight.fetching(6):  # two never fit together: the later ones wait for a turn that never comes
            return i

    results = in_flight.in_order(first, lambda i, v, e: v, range(10), granules=4, budget=budget, discard=closed.append)
    assert next(results) == (0, 0)
    results.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("is2grid-granule")]
    assert closed and set(closed) <= set(range(1, 10)) and budget.in_use == 0


@settings(max_examples=40, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 100), min_size=1, max_size=12),
    limit=st.integers(1, 150),
    granules=st.integers(1, 5),
    workers=st.integers(1, 3),
    lead=st.one_of(st.none(), st.integers(1, 4)),
)
def test_the_budget_is_never_exceeded_but_by_a_granule_alone_and_the_run_never_stalls(
    sizes, limit, granules, workers, lead
):
    """Also with several second stages at once (a full budget frees as each is gridded: this once hung), and
    with any lead, however the run's timings move it."""
    budget = in_flight.ByteBudget(limit, lead=lead)
    seen: list[tuple[int, int]] = []
    lock = threading.Lock()

    def first(i):
        with in_flight.fetching(sizes[i]) as ahead:
            if ahead:
                with lock:
                    seen.append((budget.in_use, len(budget._held)))
        return sizes[i]

    got = [
        v for _, v in in_flight.in_order(first, lambda i, v, e: v, range(len(sizes)), granules, budget, workers=workers)
    ]
    assert got == sizes
    assert budget.in_use == 0
    assert all(in_use <= limit or holders == 1 for in_use, holders in seen)


def test_a_granule_fetches_only_within_the_lead_of_the_first_not_yet_gridded():
    budget = in_flight.ByteBudget(10**9, lead=2)
    assert budget.acquire(0, 1) and budget.acquire(1, 1)
    third = threading.Thread(target=budget.acquire, args=(2, 1))
    third.start()
    third.join(0.2)
    assert third.is_alive() and 2 not in budget._held  # two ahead of granule 0, which is not gridded yet
    budget.release(0)
    third.join(5)
    assert not third.is_alive() and 2 in budget._held


@pytest.mark.parametrize(
    ("fetches", "griddings", "gridders", "most", "lead"),
    [
        ([0.3], [0.1], 1, None, 5),  # three fetches overlap a gridding, one being gridded, one spare
        ([0.05], [0.13], 1, None, 3),  # a near link: one fetched while one is gridded, one spare
        ([0.3], [0.2], 2, None, 6),  # two gridded at once: a granule every 0.1 s
        ([0.3, 0.3, 9.0], [0.1, 0.1, 0.1], 1, None, 5),  # medians: one slow fetch does not move it
        ([2.0], [0.1], 1, 8, 8),  # never more than the granules in flight
    ],
)
def test_the_lead_follows_the_runs_fetches_and_griddings(fetches, griddings, gridders, most, lead):
    budget = in_flight.ByteBudget(100, most=most)
    budget.gridders = gridders
    assert budget.lead == in_flight.FETCHES_AT_ONCE  # until the run has timed both
    for seconds in fetches:
        budget.observe(fetched=seconds)
    assert budget.lead == in_flight.FETCHES_AT_ONCE
    for seconds in griddings:
        budget.observe(gridded=seconds)
    assert budget.lead == lead
    unbounded = in_flight.ByteBudget(100, lead=None)
    unbounded.observe(fetched=1.0)
    unbounded.observe(gridded=0.01)
    assert unbounded.lead is None


def test_one_second_stage_at_a_time_runs_in_the_callers_thread_as_a_sequential_run():
    here = threading.current_thread()
    got = list(in_flight.in_order(lambda i: i, lambda i, v, e: threading.current_thread(), range(6), granules=3))
    assert all(thread is here for _, thread in got)
    elsewhere = in_flight.in_order(lambda i: i, lambda i, v, e: threading.current_thread(), range(6), 3, workers=2)
    assert all(thread is not here for _, thread in elsewhere)


def test_memory_goes_back_to_the_system_once_with_the_last_granule(monkeypatch):
    """The fetching threads' free memory goes back once the last granule is gridded, not after every one.

    Trimming after every granule also gave back the gridding's own free pages, which the next granule took
    again zero-filled. A run that fetched nothing ahead gives nothing back.
    """
    from is2grid import _malloc

    gridded: list[int] = []
    given: list[list[int]] = []
    monkeypatch.setattr(_malloc, "give_back", lambda: given.append(list(gridded)) or True)
    sizes = [5, 0, 7, 3, 4, 6, 2, 0]

    def first(i):
        with in_flight.fetching(sizes[i]):
            return i

    def then(i, v, e):
        gridded.append(i)
        return v

    got = list(in_flight.in_order(first, then, range(8), 3, in_flight.ByteBudget(100)))
    assert [v for _, v in got] == list(range(8))
    assert given == [list(range(8))]  # once, after the last, though the last fetched nothing itself
    given.clear()
    list(in_flight.in_order(first, lambda i, v, e: v, range(5), granules=1))  # one after another: nothing ahead
    list(in_flight.in_order(lambda i: i, lambda i, v, e: v, range(5), granules=3))  # in flight, nothing fetched
    assert given == []


def test_arena_tops_go_back_while_granules_are_in_flight_and_only_then(monkeypatch):
    """The opening and fetching threads' arenas do not keep a large free top (see test_memory)."""
    import contextlib

    from is2grid import _malloc

    inside = [False]
    seen: list[tuple[int, bool]] = []

    @contextlib.contextmanager
    def tops_trimmed():
        inside[0] = True
        try:
            yield True
        finally:
            inside[0] = False

    monkeypatch.setattr(_malloc, "tops_trimmed", tops_trimmed)

    def then(i, v, e):
        seen.append((i, inside[0]))
        return v

    assert [v for _, v in in_flight.in_order(lambda i: i, then, range(4), granules=3)] == [0, 1, 2, 3]
    assert seen == [(i, True) for i in range(4)] and not inside[0]
    seen.clear()
    list(in_flight.in_order(lambda i: i, then, range(4), granules=1))  # one after another: glibc's own thresholds
    assert seen == [(i, False) for i in range(4)]
    seen.clear()
    results = in_flight.in_order(lambda i: i, then, range(8), granules=3)
    next(results)
    results.close()  # a consumer that stops early ends the run in flight too
    assert not inside[0]


def test_an_error_in_the_second_stage_closes_its_granule_and_the_ones_ahead():
    closed: list[int] = []

    def then(i, v, e):
        if i == 2:
            raise RuntimeError("gridding failed")
        return v

    results = in_flight.in_order(lambda i: i, then, range(8), granules=4, discard=closed.append)
    with pytest.raises(RuntimeError, match="gridding failed"):
        list(results)
    assert 2 in closed and set(closed) <= set(range(2, 8))
    assert not [t for t in threading.enumerate() if t.name.startswith("is2grid-granule")]


@settings(max_examples=40, deadline=None)
@given(
    width=st.integers(1, 4),
    plan=st.lists(st.tuples(st.floats(0, 0.004), st.booleans()), min_size=1, max_size=12),
)
def test_turns_start_in_order_and_never_more_than_their_width_at_once(width, plan):
    """Orders that skip their turn (``done`` without ``wait``: a granule that failed) never hold the others back."""
    turns = in_flight.Turns(width)
    started: list[int] = []
    running, most = [0], [0]
    lock = threading.Lock()

    def go(order: int, pause: float, skip: bool) -> None:
        time.sleep(random.random() * 0.003)
        if not skip:
            assert turns.wait(order)
            with lock:
                started.append(order)
                running[0] += 1
                most[0] = max(most[0], running[0])
            time.sleep(pause)
            with lock:
                running[0] -= 1
        turns.done(order)

    threads = [threading.Thread(target=go, args=(i, *p)) for i, p in enumerate(plan)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert not any(t.is_alive() for t in threads)
    assert started == [i for i, (_, skip) in enumerate(plan) if not skip]
    assert most[0] <= width and turns.running == 0


def test_the_cpu_goes_to_the_earliest_granule_waiting_for_it():
    cpu = _turns.Priority()
    assert cpu.acquire(-1)  # held while the others line up, latest first
    ran: list[int] = []

    def parse(order: int) -> None:
        with _turns.turn(cpu, order):
            ran.append(order)

    threads = []
    for order in (4, 3, 2, 1, 0):
        threads.append(threading.Thread(target=parse, args=(order,)))
        threads[-1].start()
        while len(cpu._waiting) < len(threads):
            time.sleep(0.001)
    cpu.release()
    for t in threads:
        t.join(timeout=10)
    assert ran == [0, 1, 2, 3, 4]
    assert cpu.holder is None


def test_a_granule_waiting_for_bytes_lets_the_next_one_parse():
    """Granule 0 waits for the network until granule 1 has parsed: holding its turn meanwhile would hang."""
    arrived = threading.Event()
    parsed: list[int] = []

    def first(i: int) -> int:
        if i == 0:
            with _turns.waiting():
                assert arrived.wait(timeout=10), "granule 0 held the CPU while it waited for the network"
        parsed.append(i)
        if i == 1:
            arrived.set()
        return i

    got = [v for _, v in in_flight.in_order(first, lambda i, v, e: v, range(3), granules=3)]
    assert got == [0, 1, 2]
    assert parsed.index(1) < parsed.index(0)


def test_waiting_gives_the_turn_up_and_takes_it_back_nested_or_not():
    cpu = _turns.Priority()
    with _turns.turn(cpu, 7):
        assert cpu.holder == 7
        with _turns.waiting():
            assert cpu.holder is None
            with _turns.waiting():  # an inner wait (a read inside a fan-out) changes nothing
                assert cpu.holder is None
            assert cpu.acquire(3)  # another granule parses meanwhile
            cpu.release()
        assert cpu.holder == 7
    assert cpu.holder is None
    with _turns.waiting():  # outside a run in flight: nothing to give up
        pass


def test_a_closed_run_lets_every_waiting_thread_go():
    cpu, turns = _turns.Priority(), in_flight.Turns(1)
    assert cpu.acquire(0) and turns.wait(0)
    answers: list[bool] = []
    threads = [
        threading.Thread(target=lambda: answers.append(cpu.acquire(1))),
        threading.Thread(target=lambda: answers.append(turns.wait(1))),
    ]
    for t in threads:
        t.start()
    time.sleep(0.05)
    cpu.close()
    turns.close()
    for t in threads:
        t.join(timeout=10)
    assert answers == [False, False] or sorted(answers) == [False, False]


# ---------------------------------------------------------------- grid_granules with granules in flight
def test_remote_granules_in_flight_grid_bit_for_bit_as_one_after_another(days, served, flight_log):
    plan, urls = served
    local = workflow.grid_granules(days, res=RES, progress=False)
    one_by_one = workflow.grid_granules(urls, res=RES, progress=False, in_flight=1)
    flight_log.clear()
    plan.max_in_flight = 0
    ahead = workflow.grid_granules(urls, res=RES, progress=False)  # the default: 8 remote granules in flight
    assert _fetched_ahead(flight_log) > 1
    assert plan.max_in_flight > 15, "several granules' requests were out at once"
    xr.testing.assert_identical(ahead, one_by_one)
    xr.testing.assert_identical(ahead, local)


def test_granules_in_flight_have_their_chunks_fetched_before_they_are_gridded(days, served, monkeypatch):
    """The first stage fetches every chunk gridding needs: gridding a granule in flight waits for no request.

    (A Dataset's per-trajectory ``row_size`` once was its smallest variable: reading it to trigger the
    read-ahead fetched nothing, and every granule's chunks were fetched while it was gridded.)
    """
    from is2grid.io import sources

    _, urls = served
    state = threading.local()
    while_gridding: list[int] = []
    read, sums = sources.ObjectStoreSource.read, workflow._sums_of

    def counting_read(self, starts, stops):
        if getattr(state, "gridding", False):
            while_gridding.append(len(starts))
        return read(self, starts, stops)

    def gridding(*args, **kwargs):
        state.gridding = True
        try:
            return sums(*args, **kwargs)
        finally:
            state.gridding = False

    monkeypatch.setattr(sources.ObjectStoreSource, "read", counting_read)
    monkeypatch.setattr(workflow, "_sums_of", gridding)
    workflow.grid_granules(urls, res=RES, progress=False, in_flight=4)
    assert while_gridding == []


def test_granules_in_flight_fetch_a_few_at_once_earliest_first(days, served, monkeypatch):
    """The first granule's bytes are not shared out among all granules in flight: a few fetch at once, in order."""
    _, urls = served
    fetching: list[int] = []
    most = [0]
    wait = in_flight.Turns.wait

    def spying(self, order):
        ok = wait(self, order)
        fetching.append(order)
        most[0] = max(most[0], self.running)
        return ok

    monkeypatch.setattr(in_flight.Turns, "wait", spying)
    flown = workflow.grid_granules(urls, res=RES, progress=False, in_flight=8)
    assert fetching == list(range(len(urls)))
    assert 1 < most[0] <= in_flight.FETCHES_AT_ONCE < 8
    one_by_one = workflow.grid_granules(urls, res=RES, progress=False, in_flight=1)
    xr.testing.assert_identical(flown, one_by_one)


def test_the_order_of_the_granules_given_does_not_change_the_counts(days, served):
    _, urls = served
    shuffled = list(urls)
    random.Random(1).shuffle(shuffled)
    a = workflow.grid_granules(urls, res=RES, progress=False, in_flight=3)
    b = workflow.grid_granules(shuffled, res=RES, progress=False, in_flight=5)
    np.testing.assert_array_equal(a.n_segments.values, b.n_segments.values)
    for name in ("mean_fb", "std_fb", "mean_seg_length"):  # float sums in another order: round-off only
        np.testing.assert_allclose(a[name].values, b[name].values, rtol=1e-12, atol=1e-12)
    assert a.attrs["granule_list_sha256"] == b.attrs["granule_list_sha256"]


def test_a_small_byte_budget_bounds_the_granules_fetched_ahead(days, served, flight_log):
    _, urls = served
    with xr.open_dataset(days[0], engine="atl10", variables=["beam_fb_height", "height_segment_length_seg"]) as ds:
        held = sum(v.nbytes for v in ds.variables.values())
    expected = workflow.grid_granules(urls, res=RES, progress=False, in_flight=1)
    flight_log.clear()
    two = workflow.grid_granules(urls, res=RES, progress=False, in_flight=8, in_flight_bytes=int(2.5 * held))
    assert 1 <= _fetched_ahead(flight_log) <= 2
    xr.testing.assert_identical(two, expected)
    flight_log.clear()
    alone = workflow.grid_granules(urls, res=RES, progress=False, in_flight=8, in_flight_bytes=1)
    assert _fetched_ahead(flight_log) == 1, "a granule larger than the budget goes alone, and the run goes on"
    xr.testing.assert_identical(alone, expected)


def test_bad_granules_in_flight_are_skipped_or_raised_as_one_after_another(days, served, tmp_path):
    _, urls = served
    broken = days[0].parent / "ATL10-02_20190920060000_05990402_006_01.h5"  # served beside the others
    broken.write_bytes(days[4].read_bytes()[:5000])
    try:
        with_bad = [*urls[:4], urls[0].rsplit("/", 1)[0] + "/" + broken.name, *urls[4:]]
        with pytest.warns(is2grid.Is2gridWarning, match="1 of 9 granules skipped"):
            ahead = workflow.grid_granules(with_bad, res=RES, progress=False, errors="skip", in_flight=4)
        with pytest.warns(is2grid.Is2gridWarning, match="1 of 9 granules skipped"):
            one = workflow.grid_granules(with_bad, res=RES, progress=False, errors="skip", in_flight=1)
        xr.testing.assert_identical(ahead, one)
        assert broken.name in ahead.attrs["granules_skipped"]
        with pytest.raises(is2grid.GranuleError, match=broken.name):
            workflow.grid_granules(with_bad, res=RES, progress=False, in_flight=4)
        assert not [t for t in threading.enumerate() if t.name.startswith("is2grid-granule")]
    finally:
        broken.unlink()


def test_wrong_in_flight_options_are_named(days):
    with pytest.raises(is2grid.GridError, match="in_flight=0"):
        workflow.grid_granules(days, res=RES, progress=False, in_flight=0)
    with pytest.raises(is2grid.GridError, match="in_flight_bytes=-1"):
        workflow.grid_granules(days, res=RES, progress=False, in_flight_bytes=-1)


def test_local_files_stay_one_after_another_unless_asked(days, flight_log):
    workflow.grid_granules(days, res=RES, progress=False)
    assert not [r for r in flight_log.records if r.name == "is2grid.in_flight"]
    ahead = workflow.grid_granules(days, res=RES, progress=False, in_flight=3)
    assert _fetched_ahead(flight_log) >= 1
    xr.testing.assert_identical(ahead, workflow.grid_granules(days, res=RES, progress=False))


def test_the_stores_frontier_holds_with_granules_in_flight(days, served, tmp_path, monkeypatch):
    """Each bin is written once no granule still to come can reach it, and the store is the sequential one."""
    _, urls = served
    written_when: list[int] = []
    original = GridStore.add

    def add(self, granule, sums):
        written_when.append(self.written)
        return original(self, granule, sums)

    monkeypatch.setattr(GridStore, "add", add)
    ahead = workflow.grid_granules(urls, res=RES, progress=False, store=tmp_path / "a.zarr", in_flight=4)
    assert written_when == [0, 1, 2, 3, 4, 5, 6, 7]  # as test_scale's sequential run: the 23:30 ones wait
    one = workflow.grid_granules(urls, res=RES, progress=False, store=tmp_path / "b.zarr", in_flight=1)
    for name in ahead.variables:
        np.testing.assert_array_equal(ahead[name].values, one[name].values, err_msg=name)
    assert ahead.attrs["granule_list_sha256"] == one.attrs["granule_list_sha256"]


def test_a_cluster_keeps_granules_in_flight_in_each_task(days, served, tmp_path):
    import distributed

    _, urls = served
    expected = workflow.grid_granules(days, res=RES, progress=False)
    with (
        distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as lc,
        distributed.Client(lc) as client,
    ):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # distributed's note on large graphs
            result = workflow.grid_granules(urls, res=RES, progress=False, client=client, in_flight=4)
            stored = workflow.grid_granules(
                urls, res=RES, progress=False, client=client, in_flight=4, store=tmp_path / "c.zarr"
            )
    np.testing.assert_array_equal(result.n_segments.values, expected.n_segments.values)
    for name in ("mean_fb", "std_fb"):
        np.testing.assert_allclose(result[name].values, expected[name].values, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(
        stored.n_segments.values, expected.n_segments.reindex_like(stored.n_segments, fill_value=0).values
    )


def test_batches_on_a_cluster_keep_their_granules_in_flight():
    flight = workflow._Flight(granules=8, nbytes=1)

    class Client:
        def __init__(self, threads):
            self.threads = threads

        def nthreads(self):
            return {f"w{i}": 1 for i in range(self.threads)}

    assert flight.batch(16, Client(2)) == 8  # an even share: each worker keeps 8 in flight
    assert flight.batch(1000, Client(20)) == 16  # at most twice the granules in flight per task
    assert flight.batch(3, Client(20)) == 1
    assert flight.batch(16, Client(2), merged=False) == 8  # to a store: the same, to keep them in flight
    one = workflow._Flight(granules=1, nbytes=1)
    assert one.batch(16, Client(2)) == 3  # local, in memory: a few per task, merged there, to balance
    assert one.batch(16, Client(2), merged=False) == 1  # local, to a store: every granule's sums travel anyway


def test_the_command_line_grids_urls_with_granules_in_flight(days, served, tmp_path, flight_log):
    from is2grid import cli

    _, urls = served
    out = tmp_path / "flight.nc"
    assert cli.main(["grid", *urls, "--res", str(RES), "--out", str(out), "--in-flight", "3"]) == 0
    assert _fetched_ahead(flight_log) > 1
    expected = workflow.grid_granules(days, res=RES, progress=False)
    with xr.open_dataset(out) as written:
        np.testing.assert_array_equal(written.n_segments.values, expected.n_segments.values)
        np.testing.assert_allclose(written.mean_fb.values, expected.mean_fb.values, rtol=1e-6)


def test_nested_metadata_calls_from_many_granules_at_once_never_wait_for_ever():
    """Granules opening at once fill the shared metadata pool with calls that wait on nested calls."""
    from concurrent.futures import ThreadPoolExecutor

    from is2grid.io.reader import concurrently

    def leaf():
        time.sleep(0.001)
        return 1

    def level():
        return sum(concurrently(*[leaf] * 4))

    def granule(_):
        return sum(concurrently(*[level] * 6))

    with ThreadPoolExecutor(40) as pool:  # 40 x 6 outer calls: more than the pool's 32 threads
        assert list(pool.map(granule, range(40), timeout=60)) == [24] * 40


def test_granules_in_flight_through_sidecars_grid_bit_for_bit_as_local(days, tmp_path):
    """With a DMR++ sidecar beside each remote granule, the month is the same as from local files."""
    import shutil

    from tests.dmrpp_writer import write_sidecar

    folder = tmp_path / "with-sidecars"
    folder.mkdir()
    for path in days:
        shutil.copy(path, folder / path.name)
        write_sidecar(folder / path.name)
    plan = Behaviour(latency=0.02)
    server, url = serve_scripted(folder, plan)
    try:
        remote = workflow.grid_granules([f"{url}/{p.name}" for p in days], res=RES, progress=False)
    finally:
        server.shutdown()
    xr.testing.assert_identical(remote, workflow.grid_granules(days, res=RES, progress=False))
    assert plan.requests < 12 * len(days), f"{plan.requests} requests: the sidecars were not used"


@given(n=st.integers(0, 200), size=st.integers(1, 40))
def test_batches_are_consecutive_at_most_the_size_and_even(n, size):
    """Batches keep the order, respect the size, and differ by one at most (so workers end together)."""
    runs = in_flight.windowed(list(range(n)), size)
    assert [x for run in runs for x in run] == list(range(n))
    assert all(0 < len(run) <= size for run in runs)
    assert len(runs) == -(-n // size)
    assert not runs or max(map(len, runs)) - min(map(len, runs)) <= 1


# ---------------------------------------------------------------- the chunks with orbit_info
def _with_scalars_last(source, target, leave_out=()):
    """An h5py copy with orbit_info and ancillary_data copied last: far beyond the first bytes, as in NASA's files.

    (NASA's ATL08 sidecar in tests/data/dmrpp puts sc_orient at byte 289,004; the NSIDC subsets in tests/data
    at 545,122 and 907,633; is2grid's own writer within the first 64 KiB, which come with the first GET.)
    """
    import h5py

    with h5py.File(source) as old, h5py.File(target, "w") as new:
        for key, value in old.attrs.items():
            new.attrs[key] = value
        for name in sorted(old, key=lambda n: n in ("orbit_info", "ancillary_data")):
            if name not in leave_out:
                old.copy(old[name], new, name=name)
    return target


@pytest.fixture(scope="module")
def far(days, tmp_path_factory):
    """Three granules with their scalars far in the file and a sidecar each, behind a 20 ms server."""
    from tests.dmrpp_writer import write_sidecar

    folder = tmp_path_factory.mktemp("far")
    paths = [_with_scalars_last(p, folder / p.name) for p in days[:3]]
    for path in paths:
        write_sidecar(path)
    plan = Behaviour(latency=0.02)
    server, url = serve_scripted(folder, plan)
    yield paths, [f"{url}/{p.name}" for p in paths]
    server.shutdown()


def _network_reads(monkeypatch) -> dict[str, list[int]]:
    """Per granule, the bytes of each read that went to the server (reads of the first bytes, already here, not)."""
    from is2grid.io import sources

    reads: dict[str, list[int]] = {}
    read = sources.ObjectStoreSource.read

    def spying(self, starts, stops):
        if stops and not all(b <= len(self._head) for b in stops):
            moved = sum(b - a for a, b in zip(starts, stops, strict=True))
            reads.setdefault(self.name.rsplit("/", 1)[-1], []).append(moved)
        return read(self, starts, stops)

    monkeypatch.setattr(sources.ObjectStoreSource, "read", spying)
    return reads


def _grid_served_as_local(folder, paths, monkeypatch) -> dict[str, list[int]]:
    """Grid ``paths`` in flight from ``folder`` behind a 20 ms server, check it equals local; the network reads."""
    server, url = serve_scripted(folder, Behaviour(latency=0.02))
    try:
        reads = _network_reads(monkeypatch)
        urls = [f"{url}/{p.name}" for p in paths]
        flown = workflow.grid_granules(urls, res=RES, progress=False, in_flight=len(paths))
    finally:
        server.shutdown()
    xr.testing.assert_identical(flown, workflow.grid_granules(paths, res=RES, progress=False))
    return reads


def test_the_far_copies_keep_their_scalars_beyond_the_first_bytes(far):
    import h5py

    paths, _ = far
    with h5py.File(paths[0]) as f:
        scalar = f["orbit_info/sc_orient"]
        at = scalar.id.get_offset() if scalar.chunks is None else scalar.id.get_chunk_info(0).byte_offset
        assert at > 64 * 1024


def test_in_flight_a_sidecar_naming_the_strong_beams_fetches_their_chunks_with_orbit_info(far, monkeypatch):
    """One round trip after the sidecar, not two: the beam groups' atlas_beam_type, checked by sc_orient."""
    paths, urls = far
    reads = _network_reads(monkeypatch)
    flown = workflow.grid_granules(urls, res=RES, progress=False, in_flight=3)
    xr.testing.assert_identical(flown, workflow.grid_granules(paths, res=RES, progress=False))
    for path in paths:
        [together] = reads[path.name]  # orbit_info's scalars and every chunk gridding needs, in one read
        assert together > 50_000


def test_a_subset_without_some_beams_still_fetches_its_chunks_with_orbit_info(days, tmp_path, monkeypatch):
    """A beam subset (gt3l and gt3r left out): the guess is the strong beams it has, as sc_orient chooses."""
    from tests.dmrpp_writer import write_sidecar

    paths = [_with_scalars_last(p, tmp_path / p.name, leave_out=("gt3l", "gt3r")) for p in days[:2]]
    for path in paths:
        write_sidecar(path)
    reads = _grid_served_as_local(tmp_path, paths, monkeypatch)
    assert [len(reads[p.name]) for p in paths] == [1, 1]


def test_beam_types_that_sc_orient_contradicts_cost_a_round_trip_never_a_value(far, tmp_path, monkeypatch):
    """A sidecar whose beam attributes say the opposite of sc_orient: sc_orient decides, the guess is dropped."""
    import shutil

    paths, _ = far
    folder = tmp_path / "swapped"
    folder.mkdir()
    for path in paths:
        shutil.copy(path, folder / path.name)
        text = path.with_name(path.name + ".dmrpp").read_text()
        swapped = text.replace("<Value>strong</Value>", "<Value>STRONG</Value>").replace(
            "<Value>weak</Value>", "<Value>strong</Value>"
        )
        (folder / (path.name + ".dmrpp")).write_text(swapped.replace("<Value>STRONG</Value>", "<Value>weak</Value>"))
    reads = _grid_served_as_local(folder, paths, monkeypatch)
    for path in paths:
        assert len(reads[path.name]) == 2  # the weak beams' chunks with the scalars, then the strong ones'


def test_opened_alone_a_granule_fetches_only_orbit_info_until_read(far, monkeypatch):
    """Outside a run in flight nothing is fetched ahead on opening: a user may read one variable of one beam."""
    paths, urls = far
    reads = _network_reads(monkeypatch)
    with xr.open_dataset(urls[0], engine="atl10") as ds:
        assert sum(reads[paths[0].name]) < 4096
        with xr.open_dataset(paths[0], engine="atl10") as local:
            xr.testing.assert_identical(ds.load(), local.load())


def test_guessed_beams_come_from_the_sidecar_or_need_no_guess(far):
    from is2grid.backend.opening import open_granule

    paths, urls = far
    granule = open_granule(urls[0], None, None)
    try:
        assert granule.reader.described
        strong = granule.guess_beams("strong")
        assert strong == is2grid.products.icesat2.beams_for(granule.sc_orient, "strong")[0]
        assert granule.guess_beams("weak") == is2grid.products.icesat2.beams_for(granule.sc_orient, "weak")[0]
        assert granule.guess_beams(["gt2r", "gt1l"]) == ["gt2r", "gt1l"]
        assert granule.guess_beams("all") == list(is2grid.products.icesat2.BEAMS)
        assert granule.guess_beams(["gt9x"]) is None
    finally:
        granule.reader.close()
    local = open_granule(paths[0], None, {"dmrpp": False})
    try:
        assert local.guess_beams("strong") is None  # the HDF5 header's attributes are not read for a guess
    finally:
        local.reader.close()
