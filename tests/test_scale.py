"""Years of granules: the Zarr store written bin by bin, resume, the memory budget, many granules as one Dataset."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import xarray as xr
import zarr

import is2grid
from is2grid import _malloc, _threads, _workers, cli, tutorial, workflow
from is2grid.grid.reduction import CellSums
from is2grid.grid.request import GridRequest
from is2grid.output.zarr_store import GRANULE_LOG, MANIFEST_GROUP, GridStore, read_manifest


@pytest.fixture(scope="module")
def days(tmp_path_factory):
    """Eight granules on eight days, two of them at 23:30 so that they reach into the next day's bin."""
    root = tmp_path_factory.mktemp("days")
    return [
        tutorial.write_granule(
            root,
            n_segments=600,
            rgt=200 + d,
            start=f"2019-09-{10 + d:02d}T{'23:30' if d in (2, 5) else '06:00'}:00",
            sc_orient=d % 2,
            seed=d,
        )
        for d in range(8)
    ]


@pytest.fixture(scope="module")
def in_memory(days):
    return workflow.grid_granules(days, res=25000, progress=False)


def manifest(store) -> dict:
    return read_manifest(store)


def grid_counting_reads(paths, store) -> tuple[xr.Dataset, list[str]]:
    """Grid ``paths`` into ``store`` at 25 km; the result, and the names of the granules read."""
    read: list[str] = []
    original = workflow._opened

    def counting(path, *args):
        read.append(str(path).rsplit("/", 1)[-1])
        return original(path, *args)

    workflow._opened = counting
    try:
        return workflow.grid_granules(paths, res=25000, progress=False, store=store), read
    finally:
        workflow._opened = original


def assert_store_equals(stored: xr.Dataset, expected: xr.Dataset) -> None:
    """The store holds the in-memory result: counts exactly, statistics to float32."""
    expected = expected.reindex_like(stored.n_segments)
    assert stored.n_segments.dtype == np.int32 and stored.mean_fb.dtype == np.float32
    np.testing.assert_array_equal(stored.n_segments.values, expected.n_segments.fillna(0).values)
    for name in ("mean_seg_length", "mean_fb", "std_fb"):
        np.testing.assert_allclose(stored[name].values, expected[name].values, rtol=2e-6, atol=1e-6)
    np.testing.assert_array_equal(stored.time.values, expected.time.values)
    np.testing.assert_array_equal(stored.time_bounds.values, expected.time_bounds.values)


def test_store_equals_the_in_memory_result(days, in_memory, tmp_path):
    stored = workflow.grid_granules(days, res=25000, progress=False, store=tmp_path / "s.zarr")
    assert_store_equals(stored, in_memory)
    # the store spans the whole grid (no window given), tiles without data are not written
    assert stored.sizes["y"] == stored.sizes["x"] == 720
    chunk_files = list((tmp_path / "s.zarr" / "mean_fb" / "c").rglob("*"))
    assert 0 < sum(f.is_file() for f in chunk_files) < stored.sizes["time"] * 4
    for key in ("granule_count", "granule_first", "granule_last", "granule_list_sha256", "segments_gridded"):
        assert stored.attrs[key] == in_memory.attrs[key], key
    assert stored.time.attrs["bounds"] == "time_bounds" and stored.mean_fb.attrs["units"] == "m"
    assert json.loads(stored.attrs["is2grid_options"])["freq"] == "1D"
    assert manifest(tmp_path / "s.zarr")["complete"] == sorted(p.name for p in days)
    # CF-decodable with plain xarray, no warnings
    assert xr.open_zarr(tmp_path / "s.zarr").mean_fb.attrs["grid_mapping"] == "crs"


def test_bins_are_written_while_granules_are_still_coming(days, tmp_path, monkeypatch):
    """A bin is written once no granule still to come can reach it: memory holds open bins only."""
    written_when: list[tuple[int, int]] = []
    original = GridStore.add

    def add(self, granule, sums):
        written_when.append((len(written_when), self.written))
        return original(self, granule, sums)

    monkeypatch.setattr(GridStore, "add", add)
    workflow.grid_granules(days, res=25000, progress=False, store=tmp_path / "s.zarr")
    # before each granule, the bins that end before its start are in the store (the 12th 23:30 one reaches
    # into the 13th, so that bin waits for the 14th)
    assert [w for _, w in written_when] == [0, 1, 2, 3, 4, 5, 6, 7]


def test_store_with_a_window_monthly_bins_and_no_time_axis(days, tmp_path):
    options = {"res": 25000, "bbox": (-180, -90, 180, -50), "freq": "MS"}
    expected = workflow.grid_granules(days, progress=False, **options)
    stored = workflow.grid_granules(days, progress=False, store=tmp_path / "m.zarr", **options)
    assert stored.sizes["time"] == 1
    assert_store_equals(stored, expected)
    flat = workflow.grid_granules(days, res=25000, freq=None, progress=False)
    stored_flat = workflow.grid_granules(days, res=25000, freq=None, progress=False, store=tmp_path / "f.zarr")
    assert stored_flat.n_segments.dims == ("y", "x")
    np.testing.assert_array_equal(stored_flat.n_segments.values, flat.n_segments.reindex_like(stored_flat).fillna(0))


def test_rerun_skips_what_is_in_and_a_stopped_run_resumes_to_the_same_store(days, in_memory, tmp_path, capsys):
    broken = tmp_path / "granules"
    broken.mkdir()
    paths = []
    for p in days:
        (broken / p.name).write_bytes(p.read_bytes())
        paths.append(broken / p.name)
    good = paths[4].read_bytes()
    paths[4].write_bytes(good[: len(good) // 3])  # truncated: the run stops there
    store = tmp_path / "r.zarr"
    with pytest.raises(is2grid.CorruptGranuleError, match=paths[4].name):
        workflow.grid_granules(paths, res=25000, progress=False, store=store)
    state = manifest(store)
    assert state["complete"] == sorted(p.name for p in paths[:4]) and state["written"] == 4
    assert xr.open_zarr(store, consolidated=False).sizes["time"] == 4  # consistent: what the manifest says
    paths[4].write_bytes(good)
    resumed, read = grid_counting_reads(paths, store)
    assert read == [p.name for p in paths[4:]], "granules already in are not read again"
    capsys.readouterr()
    workflow.grid_granules(paths, res=25000, progress=True, store=store)
    assert "8 of 8 granules are in" in capsys.readouterr().err
    assert_store_equals(resumed, in_memory)
    assert resumed.attrs["segments_gridded"] == in_memory.attrs["segments_gridded"]


def test_granules_added_later_are_merged_into_written_bins(days, in_memory, tmp_path):
    store = tmp_path / "late.zarr"
    first = [p for i, p in enumerate(days) if i not in (2, 3)]
    workflow.grid_granules(first, res=25000, progress=False, store=store)
    merged = workflow.grid_granules(days, res=25000, progress=False, store=store)
    assert_store_equals(merged, in_memory)
    assert merged.attrs["granule_count"] == len(days)
    assert merged.attrs["segments_gridded"] == in_memory.attrs["segments_gridded"]


def test_a_commit_appends_granule_names_and_a_torn_tail_is_cut_off(tmp_path):
    """The manifest stays small however many granules are in: names go to an append-only log."""
    request = GridRequest.create("ease2", res=100000, hemisphere="south", freq="1D")
    path = tmp_path / "log.zarr"
    store = GridStore(path, request)
    manifest_file, log = path / MANIFEST_GROUP / "zarr.json", path / MANIFEST_GROUP / GRANULE_LOG
    sizes = []
    for batch in range(3):
        for i in range(1000):
            store.add(f"ATL10-02_{batch}_{i:05d}.h5", CellSums.empty())
        store._commit()
        sizes.append((manifest_file.stat().st_size, log.stat().st_size))
    assert max(m for m, _ in sizes) < 2000, "the manifest does not grow with the granules"
    assert sizes[1][1] - sizes[0][1] == sizes[2][1] - sizes[1][1] == sizes[0][1], "each commit appends its own"
    state = read_manifest(path)
    assert len(state["included"]) == len(state["complete"]) == 3000
    assert state["granule_log_bytes"] == log.stat().st_size
    with open(log, "ab") as f:  # lines of a commit stopped before its manifest, the last one torn
        f.write(b'{"included": "ATL10-02_late.h5"}\n{"complete": "ATL10-0')
    assert "ATL10-02_late.h5" not in read_manifest(path)["included"]
    store.release()
    reopened = GridStore(path, request)
    assert log.stat().st_size == state["granule_log_bytes"], "cut off at the committed length"
    assert reopened.is_complete("ATL10-02_2_00999.h5") and not reopened.is_complete("ATL10-02_late.h5")
    reopened.release()
    log.write_bytes(log.read_bytes()[:100])  # changed behind is2grid's back
    with pytest.raises(is2grid.OutputError, match=r"granule log \(granules.jsonl\) holds 100 bytes.*overwrite=True"):
        GridStore(path, request)


def test_a_store_listing_its_granules_in_the_manifest_resumes(days, in_memory, tmp_path):
    """Stores written before the granule log (the lists in the manifest) reopen, and move to the log."""
    store = tmp_path / "old.zarr"
    workflow.grid_granules(days[:4], res=25000, progress=False, store=store)
    state = read_manifest(store)
    manifest_file = store / MANIFEST_GROUP / "zarr.json"
    node = json.loads(manifest_file.read_text())
    old = {k: v for k, v in state.items() if k != "granule_log_bytes"}
    node["attributes"][MANIFEST_GROUP] = old
    manifest_file.write_text(json.dumps(node))
    (store / MANIFEST_GROUP / GRANULE_LOG).unlink()
    assert read_manifest(store)["complete"] == sorted(p.name for p in days[:4])
    resumed, read = grid_counting_reads(days, store)
    assert read == [p.name for p in days[4:]]
    assert_store_equals(resumed, in_memory)
    state = read_manifest(store)
    assert "included" not in json.loads(manifest_file.read_text())["attributes"][MANIFEST_GROUP]
    assert state["complete"] == sorted(p.name for p in days)


def test_a_store_is_resumed_only_with_the_same_options(days, tmp_path):
    store = tmp_path / "o.zarr"
    workflow.grid_granules(days[:2], res=25000, progress=False, store=store)
    with pytest.raises(is2grid.OutputError, match=r"other options \(.*freq.*\).*overwrite=True"):
        workflow.grid_granules(days[:2], res=25000, freq="7D", progress=False, store=store)
    again = workflow.grid_granules(days[:2], res=25000, freq="7D", progress=False, store=store, overwrite=True)
    assert json.loads(again.attrs["is2grid_options"])["freq"] == "7D"
    other = tmp_path / "other.zarr"
    zarr.open_group(other, mode="w", zarr_format=3)
    with pytest.raises(is2grid.OutputError, match="without an is2grid manifest"):
        workflow.grid_granules(days[:2], res=25000, progress=False, store=other)


def test_an_empty_result_is_a_valid_store(synthetic, tmp_path, capsys):
    with pytest.warns(is2grid.Is2gridWarning, match="nothing was gridded"):
        stored = workflow.grid_granules([synthetic["all-fill"]], res=25000, progress=False, store=tmp_path / "e.zarr")
    assert stored.sizes["time"] == 0 and stored.attrs["segments_gridded"] == 0
    with pytest.warns(is2grid.Is2gridWarning, match="nothing was gridded"):
        code = cli.main(
            ["grid", str(synthetic["all-fill"]), "--out", str(tmp_path / "c.zarr"), "--png", str(tmp_path / "m.png")]
        )
    assert code == 0
    assert "no valid segments in 1 granules" in capsys.readouterr().out and not (tmp_path / "m.png").exists()


def test_memory_budget(days, tmp_path):
    with pytest.raises(is2grid.MemoryBudgetError, match=r"GB in memory \(8 time bins x \d+ x \d+ cells.*Zarr store"):
        workflow.grid_granules(days, res=25000, progress=False, memory_budget=1e5)
    # with a fixed extent the check comes before any granule is read (these do not exist)
    missing = [tmp_path / p.name for p in days]
    with pytest.raises(is2grid.MemoryBudgetError, match="730 time bins"):
        workflow.grid_granules(
            missing, res=6250, hemisphere="south", full_grid=True, time_range=("2019-01-01", "2020-12-30"),
            progress=False,
        )  # fmt: skip
    with pytest.raises(is2grid.GridError, match="memory_budget"):
        workflow.grid_granules(days, res=25000, progress=False, memory_budget="lots")
    assert workflow.grid_granules(days[:1], res=25000, progress=False, memory_budget=None).sizes["time"] == 1


def test_store_on_a_local_cluster(days, in_memory, tmp_path):
    import distributed

    here = _threads.count()
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with distributed.Client(cluster, set_as_default=False) as client:
            stored = workflow.grid_granules(days, res=25000, progress=False, client=client, store=tmp_path / "c.zarr")
            # dask's nanny sets OMP_NUM_THREADS=1 in its workers: two processes on two cores, not four threads
            assert set(client.run(_threads.count).values()) == {1}
            assert _threads.count() == here  # and leaves it set here, where it must not count
            # ... and MALLOC_TRIM_THRESHOLD_, which fixes glibc's mmap threshold: the workers that gridded
            # a granule have put it where glibc would have; this process is not a worker and is left alone
            assert set(client.run(lambda: _malloc._done).values()) == {True}
            assert not _malloc.fit_for_dask_worker()
    assert_store_equals(stored, in_memory)


def test_malloc_tuning_can_be_turned_off_and_is_only_for_dask_workers(days, in_memory):
    import distributed

    def tuned():
        return _malloc._done, _malloc.in_dask_worker_with_fixed_threshold()

    options = {"n_workers": 1, "threads_per_worker": 1, "processes": True, "dashboard_address": None}
    with distributed.LocalCluster(**options, env={"IS2GRID_MALLOC_TUNING": "0"}) as cluster:
        with distributed.Client(cluster, set_as_default=False) as client:
            grid = workflow.grid_granules(days, res=25000, progress=False, client=client)
            assert list(client.run(tuned).values()) == [(False, False)]  # run() is not a task: no worker here
            assert client.submit(tuned, pure=False).result() == (False, True)
    xr.testing.assert_identical(grid, in_memory)


def test_granule_start_times_order_the_work(days, tmp_path):
    """Given in any order, granules are taken by start time; renamed ones (no time in the name) first."""
    renamed = tmp_path / "renamed.h5"
    renamed.write_bytes(days[3].read_bytes())
    shuffled = [days[5], days[0], renamed, days[7], days[1], days[2], days[4], days[6]]
    stored = workflow.grid_granules(shuffled, res=25000, progress=False, store=tmp_path / "s.zarr")
    expected = workflow.grid_granules(shuffled, res=25000, progress=False)
    assert_store_equals(stored, expected)


# -- SIGTERM / SIGINT in the middle of a run ------------------------------------------------------------

CHILD = textwrap.dedent(
    """
    import sys, time
    from is2grid.grid import reduction
    from is2grid.output import zarr_store
    from is2grid.cli import main

    stage, calls = sys.argv[1], [0]
    original_sums, original_write = reduction.cell_sums, zarr_store.GridStore._write_bin

    def slow_sums(*args, **kwargs):
        calls[0] += 1
        if stage == "reading" and calls[0] == 5:
            print("reading", flush=True)
            time.sleep(30)
        return original_sums(*args, **kwargs)

    def slow_write(self, *args, **kwargs):
        if stage == "committing" and calls[0] == 5:
            print("committing", flush=True)
            time.sleep(2)
        return original_write(self, *args, **kwargs)

    reduction.cell_sums = slow_sums
    zarr_store.GridStore._write_bin = slow_write
    sys.exit(main(["grid", *sys.argv[3:], "--out", sys.argv[2], "--res", "25000"]))
    """
)


@pytest.mark.parametrize("stage", ["reading", "committing"])
def test_sigterm_leaves_a_consistent_store_that_resumes(days, in_memory, tmp_path, stage):
    store = tmp_path / "t.zarr"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, stage, str(store), *map(str, days)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        while (line := child.stdout.readline().strip()) != stage:
            assert line, f"the child ended before {stage}: {child.stderr.read()}"
        child.send_signal(signal.SIGTERM)
        code = child.wait(timeout=60)
    finally:
        child.kill()
    assert code == 143
    assert "rerun the same command to resume" in child.stderr.read()
    state = manifest(store)
    opened = xr.open_zarr(store, consolidated=False)
    assert opened.sizes["time"] == state["written"] > 0
    if stage == "committing":  # the commit under way when the signal came was finished first
        assert len(state["complete"]) == 5 and state["written"] == 5
    assert cli.main(["grid", *map(str, days), "--out", str(store), "--res", "25000"]) == 0
    assert_store_equals(xr.open_zarr(store), in_memory)


# -- many granules as one Dataset -----------------------------------------------------------------------


def test_open_granules_is_one_ragged_dataset(days):
    ds = is2grid.open_granules(days[:3])
    singles = [xr.open_dataset(p, engine="atl10") for p in days[:3]]
    assert ds.sizes["segment"] == sum(s.sizes["segment"] for s in singles)
    np.testing.assert_array_equal(ds.row_size.values, np.concatenate([s.row_size.values for s in singles]))
    assert list(ds.granule.values) == [p.name for p in days[:3] for _ in range(3)]
    assert ds.trajectory.values[0] == f"{days[0].name}/{singles[0].trajectory.values[0]}"
    # the ragged layout holds: the k-th trajectory's rows are its granule's beam
    starts = np.concatenate([[0], np.cumsum(ds.row_size.values)])
    for k, (granule, beam) in enumerate(str(t).split("/") for t in ds.trajectory.values):
        single = singles[[p.name for p in days[:3]].index(granule)]
        np.testing.assert_array_equal(
            ds.beam_fb_height.values[starts[k] : starts[k + 1]],
            single.beam_fb_height.where(single.beam == beam, drop=True).values,
        )
    lazy = is2grid.open_granules(days[:3], chunks={})
    assert lazy.beam_fb_height.chunks is not None
    xr.testing.assert_identical(lazy.load(), ds.load())
    gridded = ds.is2grid.to_ease2(res=25000)
    expected = workflow.grid_granules(days[:3], res=25000, progress=False)
    np.testing.assert_array_equal(gridded.n_segments.values, expected.n_segments.values)


def test_skipped_granules_are_listed_then_merged_when_readable(days, in_memory, tmp_path):
    folder = tmp_path / "granules"
    folder.mkdir()
    paths = [folder / p.name for p in days]
    for source, target in zip(days, paths, strict=True):
        target.write_bytes(source.read_bytes())
    good = paths[3].read_bytes()
    paths[3].write_bytes(b"not HDF5 at all")
    store = tmp_path / "k.zarr"
    with pytest.warns(is2grid.Is2gridWarning, match="1 of 8 granules skipped"):
        first = workflow.grid_granules(paths, res=25000, progress=False, store=store, errors="skip")
    assert paths[3].name in first.attrs["granules_skipped"] and first.attrs["granules_gridded"] == 7
    paths[3].write_bytes(good)
    second = workflow.grid_granules(paths, res=25000, progress=False, store=store, errors="skip")
    assert "granules_skipped" not in second.attrs and second.attrs["granules_gridded"] == 8
    assert_store_equals(second, in_memory)


@pytest.mark.parametrize(
    ("environ", "omp", "expected"),
    [({"IS2GRID_NUM_THREADS": "3"}, "1", 3), ({}, "1", 1), ({}, "x", None), ({"OMP_NUM_THREADS": "1"}, "", None)],
)
def test_thread_count_follows_the_environment(monkeypatch, environ, omp, expected):
    """OMP_NUM_THREADS counts as it was at import: a LocalCluster leaves it at 1 in the client process."""
    monkeypatch.delenv("IS2GRID_NUM_THREADS", raising=False)
    monkeypatch.setattr(_threads, "_OMP_NUM_THREADS", omp)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    assert _threads.count() == (expected or max(2, os.cpu_count() or 2))


def test_one_thread_reads_the_same_values(days, monkeypatch):
    """With one thread, chunks are decoded and points projected inline: the result is the same."""
    threaded = workflow.grid_granules(days, res=25000, progress=False)
    monkeypatch.setenv("IS2GRID_NUM_THREADS", "1")
    xr.testing.assert_identical(workflow.grid_granules(days, res=25000, progress=False), threaded)


@pytest.mark.parametrize("caller_works", [True, False])
@pytest.mark.parametrize("threads", ["1", "2", "4"])
def test_decode_work_is_shared_out_once_and_stops_at_the_first_error(monkeypatch, threads, caller_works):
    import threading
    import time

    from is2grid import _threads

    monkeypatch.setenv("IS2GRID_NUM_THREADS", threads)
    done: list[int] = []
    who: set[str] = set()

    def work(i):
        time.sleep(0.001)
        who.add(threading.current_thread().name)
        done.append(i)

    _threads.each(200, work, caller_works)
    assert sorted(done) == list(range(200))  # every item, once
    assert ("MainThread" in who) == caller_works

    done.clear()

    def failing(i):
        if i == 20:
            raise RuntimeError("chunk 20 is damaged")
        work(i)

    with pytest.raises(RuntimeError, match="chunk 20"):
        _threads.each(200, failing, caller_works)
    settled = len(done)
    time.sleep(0.05)
    assert len(done) == settled < 200  # the others stopped, and nothing runs after the error is raised


def test_workers_that_join_later_are_set_up_too(days, in_memory):
    """Credentials and the allocator reach every worker once, through a worker plugin, not from tasks."""
    import distributed

    from is2grid.io import credentials as credentials_module

    made = is2grid.Credentials(token="a-token-for-the-test")
    options = {"n_workers": 1, "threads_per_worker": 1, "processes": True, "dashboard_address": None}

    profiling = not _workers.PROFILER_CAN_DEADLOCK  # stopped on Python 3.11 (it can hang a worker there)

    def state(dask_worker):
        return made.key in credentials_module._PINNED, _malloc._done, "profile" in dask_worker.periodic_callbacks

    with distributed.LocalCluster(**options) as cluster:
        with distributed.Client(cluster, set_as_default=False) as client:
            grid = workflow.grid_granules(days, res=25000, progress=False, client=client, credentials=made)
            assert list(client.run(state).values()) == [(True, True, profiling)]
            cluster.scale(2)  # as an adaptive cluster or Coiled adds a worker after the run started
            client.wait_for_workers(2, timeout=60)
            assert list(client.run(state).values()) == [(True, True, profiling)] * 2
    xr.testing.assert_identical(grid, in_memory)


def test_the_worker_profiler_that_can_hang_python_3_11_is_stopped_there_only():
    """sys._current_frames() against threads starting and ending: python/cpython#106883 (see is2grid._workers)."""
    import distributed

    with (
        distributed.LocalCluster(n_workers=1, processes=False, dashboard_address=None) as cluster,
        distributed.Client(cluster, set_as_default=False) as client,
    ):
        [worker] = cluster.workers.values()
        assert "profile" in worker.periodic_callbacks  # Dask's default
        client.register_plugin(_workers.WorkerSetup())
        assert ("profile" in worker.periodic_callbacks) is (sys.version_info >= (3, 12))
        assert not _workers.stop_profiler(worker) or sys.version_info >= (3, 12)


def test_a_new_store_on_a_cluster_is_made_while_the_workers_grid(days, in_memory, tmp_path, monkeypatch):
    """The client makes a new store after sending the tasks (the workers would wait for it); a resumed one before."""
    import distributed

    events: list[str] = []
    submitted, made = workflow._submitted, GridStore.__init__

    def submitting(urls, *args, **kwargs):
        events.append(f"{len(urls)} sent")
        return submitted(urls, *args, **kwargs)

    def making(self, *args, **kwargs):
        events.append("store")
        made(self, *args, **kwargs)

    monkeypatch.setattr(workflow, "_submitted", submitting)
    monkeypatch.setattr(GridStore, "__init__", making)
    path = tmp_path / "new.zarr"
    with (
        distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as lc,
        distributed.Client(lc, set_as_default=False) as client,
    ):
        stored = workflow.grid_granules(days, res=25000, progress=False, client=client, store=path)
        assert events == [f"{len(days)} sent", "store"]
        events.clear()
        workflow.grid_granules(days, res=25000, progress=False, client=client, store=path)
        assert events == ["store", "0 sent"]  # resumed: the store says what is left (nothing)
    assert_store_equals(stored, in_memory)


def test_a_store_another_writer_made_meanwhile_is_resumed_never_counted_twice(days, in_memory, tmp_path, monkeypatch):
    """The store looked new when the tasks were sent, but another writer made it before this one opened it."""
    import distributed

    path = tmp_path / "raced.zarr"
    workflow.grid_granules(days[:3], res=25000, progress=False, store=path)  # the other writer, done first
    monkeypatch.setattr(GridStore, "will_be_new", staticmethod(lambda path, overwrite=False: True))
    with (
        distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as lc,
        distributed.Client(lc, set_as_default=False) as client,
    ):
        stored = workflow.grid_granules(days, res=25000, progress=False, client=client, store=path)
    assert manifest(path)["segments"] == int(in_memory.n_segments.sum())
    assert_store_equals(stored, in_memory)
