"""The Zarr store under a bad day: killed at every step of a commit, two writers, revisions, lost chunks, full disks."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import warnings

import numpy as np
import pytest
import xarray as xr

import is2grid
from is2grid import tutorial, workflow
from is2grid.output import zarr_store
from is2grid.output.zarr_store import MANIFEST_GROUP, GridStore, read_manifest

RES = 100000


@pytest.fixture(scope="module")
def days(tmp_path_factory):
    """Six granules on six days; the ones on days 1 and 3 reach past midnight into the next day's bin."""
    root = tmp_path_factory.mktemp("safety")
    return [
        tutorial.write_granule(
            root,
            n_segments=400,
            rgt=300 + d,
            start=f"2019-09-{10 + d:02d}T{'23:30' if d in (1, 3) else '06:00'}:00",
            seed=d,
        )
        for d in range(6)
    ]


LATE = (1, 4)  # granules added by the second run, into bins the first run has written


def first_run(days):
    return [p for i, p in enumerate(days) if i not in LATE]


def grid(paths, store, **options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", is2grid.Is2gridWarning)
        return workflow.grid_granules(paths, res=RES, progress=False, store=store, **options)


def contents(store) -> dict:
    """What a store holds that a user reads: every array's values and the bookkeeping attributes."""
    with xr.open_zarr(store, consolidated=False) as ds:
        values = {name: ds[name].values.copy() for name in ds.variables}
        attrs = {k: ds.attrs.get(k) for k in ("segments_gridded", "granule_count", "granule_list_sha256")}
    state = read_manifest(store)
    return {"values": values, "attrs": attrs, "included": state["included"], "segments": state["segments"]}


def assert_same(got: dict, expected: dict, *, exact: bool) -> None:
    assert got["attrs"] == expected["attrs"]
    assert got["included"] == expected["included"] and got["segments"] == expected["segments"]
    assert got["values"].keys() == expected["values"].keys()
    for name, want in expected["values"].items():
        have = got["values"][name]
        if exact or want.dtype.kind not in "f":
            np.testing.assert_array_equal(have, want, err_msg=name)
        else:
            np.testing.assert_allclose(have, want, rtol=3e-7, atol=0, err_msg=name)


@contextlib.contextmanager
def snapshots_at_every_step(folder, store):
    """Copy the store at every point of the commit protocol: what a process killed there leaves on disk."""
    taken: list[tuple[str, object]] = []
    original = zarr_store._step

    def step(point):
        copy = folder / f"{len(taken):03d}.zarr"
        shutil.copytree(store, copy)
        taken.append((point, copy))

    zarr_store._step = step
    try:
        yield taken
    finally:
        zarr_store._step = original


@pytest.mark.parametrize("freq", ["1D", None], ids=["daily", "no-time"])
def test_a_kill_at_every_step_of_every_commit_resumes_to_the_uninterrupted_store(days, tmp_path, freq):
    """The first run appends bins; the second merges two late granules into bins already written."""
    reference = tmp_path / "reference.zarr"
    grid(first_run(days), reference, freq=freq)
    grid(days, reference, freq=freq)
    expected = contents(reference)
    assert expected["segments"] == grid(days, tmp_path / "one.zarr", freq=freq).attrs["segments_gridded"]

    store = tmp_path / "s.zarr"
    with snapshots_at_every_step(tmp_path / "first", store) as first:
        (tmp_path / "first").mkdir()
        grid(first_run(days), store, freq=freq)
    with snapshots_at_every_step(tmp_path / "second", store) as second:
        (tmp_path / "second").mkdir()
        grid(days, store, freq=freq)
    assert_same(contents(store), expected, exact=True)
    points = {p for p, _ in first + second}
    assert {"journal begun", "chunk journaled", "chunk written", "log appended", "manifest replaced"} <= points
    assert len(second) > 10

    for run, taken in (("first", first), ("second", second)):
        for k, (point, copy) in enumerate(taken):
            if run == "first":
                grid(first_run(days), copy, freq=freq)  # the killed run, rerun
            grid(days, copy, freq=freq)
            got = contents(copy)
            try:
                assert_same(got, expected, exact=True)
            except AssertionError as err:
                raise AssertionError(f"killed in the {run} run at step {k} ({point})") from err
            assert not (copy / MANIFEST_GROUP / zarr_store.JOURNAL).exists()


KILLED_CHILD = textwrap.dedent(
    """
    import os, signal, sys, warnings
    from is2grid import workflow
    from is2grid.output import zarr_store

    point, nth, store, paths = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
    seen = [0]

    def step(name):
        if name == point:
            seen[0] += 1
            if seen[0] == nth:
                os.kill(os.getpid(), signal.SIGKILL)

    zarr_store._step = step
    warnings.simplefilter("ignore")
    workflow.grid_granules(paths, res=RES, progress=False, store=store)
    """
).replace("RES", str(RES))


@pytest.mark.parametrize(
    ("point", "nth"), [("chunk written", 3), ("chunk written", 6), ("log appended", 1), ("manifest replaced", 1)]
)
def test_sigkill_while_merging_into_written_bins_never_counts_a_granule_twice(days, tmp_path, point, nth):
    """The first bug of issue 19: merged tiles written, manifest not committed, kill -9, rerun counted them twice."""
    reference = tmp_path / "reference.zarr"
    grid(first_run(days), reference)
    grid(days, reference)
    store = tmp_path / "s.zarr"
    grid(first_run(days), store)
    child = subprocess.run(
        [sys.executable, "-c", KILLED_CHILD, point, str(nth), str(store), *map(str, days)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert (store / MANIFEST_GROUP / zarr_store.JOURNAL).exists() or point == "manifest replaced"
    grid(days, store)
    assert_same(contents(store), contents(reference), exact=True)


def test_a_store_merged_over_two_runs_is_within_float32_round_off_of_one_run(days, tmp_path):
    grid(days, tmp_path / "one.zarr")
    one = contents(tmp_path / "one.zarr")
    two = tmp_path / "two.zarr"
    grid(first_run(days), two)
    grid(days, two)
    assert_same(contents(two), one, exact=False)


def test_another_revision_or_a_renamed_copy_is_not_gridded_again(days, tmp_path):
    store = tmp_path / "r.zarr"
    before = grid(days, store).attrs["segments_gridded"]
    copies = tmp_path / "copies"
    copies.mkdir()
    revision = copies / days[2].name.replace("_01.h5", "_02.h5")
    renamed = copies / f"processed_{days[3].name}"
    shutil.copy(days[2], revision)
    shutil.copy(days[3], renamed)
    with pytest.warns(is2grid.Is2gridWarning, match=r"2 granule\(s\) are in .* already under another name"):
        again = workflow.grid_granules([*days[:2], revision, renamed, *days[4:]], res=RES, progress=False, store=store)
    assert again.attrs["segments_gridded"] == before
    assert read_manifest(store)["included"] == sorted(p.name for p in days)


HOLDER = textwrap.dedent(
    """
    import sys, time
    from is2grid.grid.request import GridRequest
    from is2grid.output.zarr_store import GridStore

    store = GridStore(sys.argv[1], GridRequest.create("ease2", res=RES, hemisphere="south", freq="1D"))
    print("holding", flush=True)
    time.sleep(60)
    """
).replace("RES", str(RES))


def test_a_second_writer_is_refused_by_name_and_a_dead_writers_lock_is_not_stale(days, tmp_path):
    store = tmp_path / "w.zarr"
    grid(days[:2], store)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(store)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        with pytest.raises(
            is2grid.StoreInUseError, match=rf"another process is writing this store \(host .*pid {holder.pid}"
        ):
            grid(days, store)
        with pytest.raises(is2grid.StoreInUseError):  # overwrite does not take a store from its writer either
            grid(days, store, overwrite=True)
    finally:
        holder.kill()  # kill -9: no clean-up ran, the kernel dropped the lock
        holder.wait()
    assert json.loads((store / MANIFEST_GROUP / zarr_store.LOCK).read_text())["pid"] == holder.pid
    assert grid(days, store).attrs["granules_gridded"] == len(days)
    assert (store / MANIFEST_GROUP / zarr_store.LOCK).read_text() == "", "released at the end of the run"


def test_two_writers_started_together_one_wins_and_the_store_is_right(days, tmp_path):
    store = tmp_path / "race.zarr"
    child = textwrap.dedent(
        f"""
        import sys, warnings
        warnings.simplefilter("ignore")
        import is2grid
        from is2grid import workflow
        try:
            workflow.grid_granules(sys.argv[2:], res={RES}, progress=False, store=sys.argv[1])
            print("done")
        except is2grid.StoreInUseError as err:
            print("refused", err)
        """
    )
    runs = [
        subprocess.Popen([sys.executable, "-c", child, str(store), *map(str, days)], stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outcomes = sorted(r.communicate(timeout=120)[0].split()[0] for r in runs)
    assert outcomes in (["done", "refused"], ["done", "done"])  # the second may start after the first ended
    state = contents(store)
    grid(days, tmp_path / "alone.zarr")
    expected = contents(tmp_path / "alone.zarr")
    assert_same(state, expected, exact=True)
    with xr.open_zarr(store) as ds:
        assert ds.attrs["time_coverage_start"].startswith("2019-09-10")


def test_a_chunk_deleted_outside_is2grid_is_a_named_error(days, tmp_path):
    store = tmp_path / "d.zarr"
    grid(days[:4], store)
    chunk = next(p for p in sorted((store / "n_segments" / "c").rglob("*")) if p.is_file())
    chunk.unlink()
    with pytest.raises(is2grid.OutputError, match=r"1 of the 1 chunk files of 'n_segments' of the time bin starting "
                                                  r"2019-09-10.*missing.*overwrite=True"):  # fmt: skip
        grid(days, store)
    with pytest.raises(is2grid.OutputError, match="are missing"):
        GridStore(store, is2grid.grid.request.GridRequest.create("ease2", res=RES, hemisphere="south", freq="1D"))


@pytest.mark.parametrize(
    "damage",
    [
        lambda node: node["attributes"].update({MANIFEST_GROUP: "written"}),
        lambda node: node["attributes"][MANIFEST_GROUP].update(written="many"),
        lambda node: node["attributes"][MANIFEST_GROUP].pop("segments"),
        None,
    ],
    ids=["not-a-mapping", "bad-count", "key-missing", "not-json"],
)
def test_a_damaged_manifest_is_a_named_error(days, tmp_path, damage):
    store = tmp_path / "m.zarr"
    grid(days[:2], store)
    node_file = store / MANIFEST_GROUP / "zarr.json"
    if damage is None:
        node_file.write_text(node_file.read_text()[:40])
    else:
        node = json.loads(node_file.read_text())
        damage(node)
        node_file.write_text(json.dumps(node))
    with pytest.raises(is2grid.OutputError, match=r"manifest .* is damaged .*overwrite=True"):
        grid(days, store)


def fill(path) -> None:
    """Write zeros to ``path`` until the disk is full."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        with contextlib.suppress(OSError):
            while True:
                os.write(fd, b"\0" * 4096)
    finally:
        os.close(fd)


@pytest.fixture
def small_disk(tmp_path):
    """A 3 MB tmpfs: a real file system that fills up (mounting needs root, which CI has)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_is_a_named_error_and_the_store_resumes_elsewhere(days, small_disk, tmp_path):
    filler = small_disk / "filler"
    store = small_disk / "full.zarr"
    grid(days[:2], store)
    fill(filler)
    with pytest.raises(is2grid.OutputError, match=r"disk is full.*rerun the same command"):
        grid(days, store)
    filler.unlink()
    resumed = grid(days, store)
    alone = grid(days, tmp_path / "alone.zarr")
    assert resumed.attrs["segments_gridded"] == alone.attrs["segments_gridded"]
    np.testing.assert_array_equal(resumed.n_segments.values, alone.n_segments.values)


@pytest.mark.parametrize("room", [0, 64 * 1024], ids=["full", "nearly-full"])
def test_a_full_disk_while_writing_netcdf_is_a_named_error(days, small_disk, room):
    big = workflow.grid_granules(days, res=6250, freq="1D", progress=False)
    fill(small_disk / "filler")
    os.truncate(small_disk / "filler", os.path.getsize(small_disk / "filler") - room)
    with pytest.raises(is2grid.OutputError, match=r"disk is full.*Free space"):
        workflow.write_netcdf(big, small_disk / "out.nc")
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler"], "no partial file is left behind"


def test_a_read_only_folder_is_a_named_error_for_both_outputs(days, small_disk):
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    with pytest.raises(is2grid.OutputError, match=r"cannot write .*(read-only|Read-only)"):
        grid(days[:2], small_disk / "ro.zarr")
    result = workflow.grid_granules(days[:2], res=RES, progress=False)
    with pytest.raises(is2grid.OutputError, match=r"cannot write .*(read-only|Read-only)"):
        workflow.write_netcdf(result, small_disk / "ro.nc")


def test_an_interrupted_run_releases_its_lock(days, tmp_path):
    store = tmp_path / "e.zarr"
    broken = tmp_path / days[3].name
    broken.write_bytes(days[3].read_bytes()[:5000])
    with pytest.raises(is2grid.CorruptGranuleError):
        grid([*days[:3], broken], store)
    started = time.monotonic()
    assert grid(days, store).attrs["granules_gridded"] == len(days)
    assert time.monotonic() - started < 60
    assert os.path.getsize(store / MANIFEST_GROUP / zarr_store.LOCK) == 0


@pytest.mark.parametrize("nth", [1, 3])
def test_a_kill_while_granules_are_in_flight_resumes_to_the_uninterrupted_store(days, tmp_path, nth):
    """Killed with the next granules opened and fetched ahead: only committed granules count, rerun is exact."""
    from tests.servers import Behaviour, serve_scripted

    server, url = serve_scripted(days[0].parent, Behaviour(latency=0.01))
    urls = [f"{url}/{p.name}" for p in days]
    try:
        reference = tmp_path / "reference.zarr"
        grid(urls, reference, in_flight=1)
        store = tmp_path / "s.zarr"
        child = subprocess.run(
            [
                sys.executable,
                "-c",
                KILLED_CHILD.replace("progress=False,", "progress=False, in_flight=4,"),
                "manifest replaced",
                str(nth),
                str(store),
                *urls,
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert child.returncode == -signal.SIGKILL, child.stderr
        assert 0 < len(read_manifest(store)["complete"]) < len(days)
        grid(urls, store, in_flight=4)
        assert_same(contents(store), contents(reference), exact=True)
    finally:
        server.shutdown()
