"""The memory budget honours the limits the process really has: cgroups (v1 and v2) and ``ulimit -v``."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from is2grid import _malloc, memory, tutorial

GLIBC = pytest.mark.skipif(
    sys.platform != "linux" or os.confstr("CS_GNU_LIBC_VERSION") is None, reason="glibc's malloc"
)


@pytest.fixture(scope="module")
def granule(tmp_path_factory):
    return tutorial.write_granule(tmp_path_factory.mktemp("mem"), n_segments=500, start="2019-09-10T06:00:00")


ULIMITED = textwrap.dedent(
    """
    import resource, sys
    from is2grid import memory, workflow
    import is2grid

    resource.setrlimit(resource.RLIMIT_AS, (int(sys.argv[2]), resource.RLIM_INFINITY))
    print(sorted(memory.memory_limits()), flush=True)
    try:
        # 8 daily bins of the whole 3.125 km grid: 7.4 GB dense, inside half a 24 GB machine, not in 2 GB
        workflow.grid_granules([sys.argv[1]], res=3125, freq="1D", full_grid=True,
                               time_range=("2019-09-10", "2019-09-17"), progress=False)
    except is2grid.MemoryBudgetError as err:
        print("MemoryBudgetError:", err)
    """
)


def test_ulimit_v_gives_a_memory_budget_error_not_numpys(granule):
    """Under ``ulimit -v`` the budget is what the address space leaves (it was the machine's memory)."""
    limit = _vm_size_of_a_fresh_interpreter() + 2 * 2**30
    done = subprocess.run(
        [sys.executable, "-c", ULIMITED, str(granule), str(limit)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "'address space'" in done.stdout
    assert "MemoryBudgetError: the result would need 7.4 GB" in done.stdout
    assert "MemoryError" not in done.stderr


def _vm_size_of_a_fresh_interpreter() -> int:
    probe = "import is2grid.workflow, is2grid.memory as m; print(m._status_bytes(m.Path('/proc'), 'VmSize'))"
    return int(subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout)


def test_the_budget_is_the_smallest_limit(monkeypatch):
    monkeypatch.setattr(memory, "memory_limits", lambda: {"machine": 20e9, "cgroup": 3e9, "address space": 7e9})
    assert memory.available_memory() == 3e9


def _fake_proc(tmp_path: Path, cgroup: str, mountinfo: str) -> Path:
    proc = tmp_path / "proc"
    (proc / "self").mkdir(parents=True)
    (proc / "meminfo").write_text("MemTotal: 25000000 kB\nMemAvailable: 20000000 kB\n")
    (proc / "self" / "status").write_text("VmSize: 1000 kB\n")
    (proc / "self" / "cgroup").write_text(cgroup)
    (proc / "self" / "mountinfo").write_text(mountinfo)
    return proc


def test_cgroup_v2_limits_of_the_group_and_its_parents(tmp_path):
    """A pod's layout: the tightest of memory.max along the path counts, less what that group uses."""
    root = tmp_path / "cgroup2"
    pod = root / "kubepods" / "pod1"
    pod.mkdir(parents=True)
    (root / "kubepods" / "memory.max").write_text("8589934592\n")
    (root / "kubepods" / "memory.current").write_text("1073741824\n")
    (pod / "memory.max").write_text("4294967296\n")
    (pod / "memory.current").write_text("1073741824\n")
    mountinfo = f"30 25 0:26 / {root} rw,nosuid - cgroup2 cgroup2 rw\n"
    proc = _fake_proc(tmp_path, "0::/kubepods/pod1\n", mountinfo)
    assert memory.memory_limits(proc)["cgroup"] == 3 * 2**30
    (pod / "memory.max").write_text("max\n")
    assert memory.memory_limits(proc)["cgroup"] == 7 * 2**30
    (root / "kubepods" / "memory.max").write_text("max\n")
    assert "cgroup" not in memory.memory_limits(proc)
    assert memory.memory_limits(proc)["machine"] == 20000000 * 1024


def test_cgroup_v1_limit_seen_through_a_mount_of_a_sub_hierarchy(tmp_path):
    """A container that sees its own cgroup mounted as the root of the memory hierarchy (mount root /docker/x)."""
    point = tmp_path / "memory"
    point.mkdir()
    (point / "memory.limit_in_bytes").write_text("2147483648\n")
    (point / "memory.usage_in_bytes").write_text("536870912\n")
    mountinfo = f"40 25 0:30 /docker/abc {point} rw - cgroup cgroup rw,memory\n"
    proc = _fake_proc(tmp_path, "4:memory:/docker/abc\n3:cpu:/\n0::/\n", mountinfo)
    assert memory.memory_limits(proc)["cgroup"] == 1536 * 2**20


@pytest.fixture
def real_v1_cgroup():
    """A real cgroup v1 memory group with a 1 GB limit, made under this process's own (needs root, as CI has)."""
    mounts = Path("/proc/self/mountinfo").read_text().splitlines()
    mount = memory._mount_of(mounts, "cgroup", "memory")
    if mount is None:
        pytest.skip("no cgroup v1 memory hierarchy on this machine (cgroup v2 is tested on a copied layout)")
    root, point = mount
    path = next(line.split(":", 2)[2] for line in Path("/proc/self/cgroup").read_text().splitlines()
                if "memory" in line.split(":")[1].split(","))  # fmt: skip
    group = Path(point) / os.path.relpath(path, root) / f"is2grid-test-{uuid.uuid4().hex[:8]}"
    try:
        group.mkdir()
        (group / "memory.limit_in_bytes").write_text(str(2**30))
    except OSError as err:
        pytest.skip(f"cannot make a cgroup here: {err}")
    try:
        yield group
    finally:
        for _ in range(50):
            try:
                group.rmdir()
                break
            except OSError:
                import time

                time.sleep(0.1)


CGROUPED = textwrap.dedent(
    """
    import os, sys
    open(os.path.join(sys.argv[2], "cgroup.procs"), "w").write(str(os.getpid()))
    from is2grid import memory, workflow
    import is2grid
    print(memory.memory_limits()["cgroup"] < 2**30, flush=True)
    try:
        workflow.grid_granules([sys.argv[1]], res=6250, freq="1D", full_grid=True,
                               time_range=("2019-09-10", "2019-09-14"), progress=False)
    except is2grid.MemoryBudgetError as err:
        print("MemoryBudgetError:", err)
    """
)


def test_a_real_cgroup_limit_bounds_the_budget(granule, real_v1_cgroup):
    """5 daily bins of the whole 6.25 km grid (1.2 GB dense) are refused in a 1 GB cgroup, by name."""
    done = subprocess.run(
        [sys.executable, "-c", CGROUPED, str(granule), str(real_v1_cgroup)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("True")
    assert "MemoryBudgetError: the result would need" in done.stdout


def test_the_accessor_is_guarded_as_the_command_line_is(granule):
    """numpy's 'Unable to allocate 441. GiB' became a MemoryBudgetError with the fixes, before any work."""
    import xarray as xr

    import is2grid

    ds = xr.open_dataset(granule, engine="atl10")
    with pytest.raises(is2grid.MemoryBudgetError, match=r"would need \d+(\.\d)? GB .*store=.*bbox=.*freq="):
        ds.is2grid.to_ease2(res=1000, full_grid=True, time_range=("2019-01-01", "2019-12-31"))
    with pytest.raises(is2grid.MemoryBudgetError):
        ds.is2grid.to_ease2(res=6250, full_grid=True, time_range=("2019-01-01", "2019-12-31"), memory_budget=1e8)
    assert ds.is2grid.to_ease2(res=25000, memory_budget=None).sizes["time"] == 1


def test_a_window_without_data_says_so(granule):
    import xarray as xr

    import is2grid

    ds = xr.open_dataset(granule, engine="atl10")
    with pytest.warns(is2grid.Is2gridWarning, match=r"nothing was gridded: none of the \d+ segments .*window"):
        empty = ds.is2grid.to_ease2(res=25000, bbox=(0, -60, 1, -59))
    assert int(empty.n_segments.sum()) == 0


# ---------------------------------------------------------------- malloc arenas in the command's own process
ARENAS = textwrap.dedent(
    """
    import ctypes, sys, threading
    from is2grid import _malloc

    capped = _malloc.fewer_arenas() if sys.argv[1] == "cap" else False
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    together = threading.Barrier(8)

    def allocate():  # every thread alive at once: one that ends hands its arena to the next
        libc.malloc(64 * 1024)
        together.wait()

    threads = [threading.Thread(target=allocate) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(capped, flush=True)
    libc.malloc_info(0, ctypes.c_void_p.in_dll(libc, "stdout"))
    libc.fflush(None)
    """
)


def _arenas(how: str, **env: str) -> tuple[str, int]:
    environ = {k: v for k, v in os.environ.items() if k not in ("MALLOC_ARENA_MAX", "IS2GRID_MALLOC_TUNING")}
    out = subprocess.run(
        [sys.executable, "-c", ARENAS, how], env={**environ, **env}, capture_output=True, text=True, check=True
    ).stdout
    return out.splitlines()[0], out.count("<heap nr=")


@GLIBC
def test_the_command_line_caps_its_malloc_arenas_unless_told_otherwise():
    """Threads that allocate share two arenas, not one each (a run in flight held 1.45x a local run's peak)."""
    assert _arenas("plain")[1] >= 4
    assert _arenas("cap") == ("True", 2)
    assert _arenas("cap", MALLOC_ARENA_MAX="4") == ("False", 4)  # the user's own setting stands
    assert _arenas("cap", IS2GRID_MALLOC_TUNING="0")[0] == "False"


def test_only_the_commands_that_grid_cap_the_arenas(granule, tmp_path, monkeypatch):
    from is2grid import _malloc, cli

    asked: list[int] = []
    monkeypatch.setattr(_malloc, "fewer_arenas", lambda arenas=_malloc.ARENAS: asked.append(arenas) or True)
    assert cli.main(["info", str(granule)]) == 0
    assert asked == []
    assert cli.main(["grid", str(tmp_path / "missing.h5"), "--out", str(tmp_path / "x.nc")]) == 2
    assert asked == [_malloc.ARENAS]


RSS = textwrap.dedent(
    """
    def rss():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4096
    """
)


def _in_fresh_process(script: str, *args: str, **env: str) -> tuple[bool, int]:
    """Run ``script`` (after :data:`RSS`) in a fresh interpreter with no allocator settings but ``env``.

    The script prints a boolean and a number of MiB.
    """
    names = ("MALLOC_ARENA_MAX", "IS2GRID_MALLOC_TUNING", "GLIBC_TUNABLES", *_malloc.THRESHOLD_SETTINGS)
    environ = {k: v for k, v in os.environ.items() if k not in names}
    done = subprocess.run(
        [sys.executable, "-c", RSS + script, *args], env={**environ, **env}, capture_output=True, text=True, check=True
    )
    flag, mib = done.stdout.split()
    return flag == "True", int(mib)


GIVE_BACK = textwrap.dedent(
    """
    import threading
    from is2grid import _malloc

    held = []

    def fetch():  # small blocks, in this thread's arena (below the mmap threshold), then one that stays
        held.extend(bytearray(64 * 1024) for _ in range(3200))
        held.append(bytearray(64 * 1024))

    thread = threading.Thread(target=fetch)
    thread.start()
    thread.join()
    del held[:-1]  # freed here, into the other thread's arena, under the block that stays
    before = rss()
    given = _malloc.give_back()
    print(given, (before - rss()) // 2**20)
    """
)


@GLIBC
def test_memory_freed_in_another_threads_arena_goes_back_to_the_system():
    """What a run in flight does after each granule it fetched ahead (see test_in_flight)."""
    given, mib = _in_fresh_process(GIVE_BACK)
    assert given and mib > 150  # of 200 MiB freed
    given, mib = _in_fresh_process(GIVE_BACK, IS2GRID_MALLOC_TUNING="0")
    assert not given and mib < 20


TOPS = textwrap.dedent(
    """
    import contextlib, sys, threading
    from is2grid import _malloc

    bytearray(16 * 2**20)  # a large array freed: glibc's thresholds rise (mmap 16 MiB, trim 32 MiB), as in any run

    def fetch():  # 24 MiB in this thread's arena (below the mmap threshold), all freed into its top
        blocks = [bytearray(512 * 1024) for _ in range(48)]
        del blocks

    before = rss()
    with _malloc.tops_trimmed() if sys.argv[1] == "in-flight" else contextlib.nullcontext(False) as trimmed:
        thread = threading.Thread(target=fetch)
        thread.start()
        thread.join()
        _malloc.give_back()
    print(trimmed, (rss() - before) // 2**20)
    """
)


@GLIBC
def test_the_free_top_of_another_threads_arena_goes_back_while_a_run_is_in_flight():
    """malloc_trim leaves another arena's top; in flight, the trim threshold gives it back as it is freed."""
    trimmed, mib = _in_fresh_process(TOPS, "one-after-another")
    assert not trimmed and mib > 12  # of 24 MiB freed: kept, even after giving back
    trimmed, mib = _in_fresh_process(TOPS, "in-flight")
    assert trimmed and mib < 4
    assert _in_fresh_process(TOPS, "in-flight", IS2GRID_MALLOC_TUNING="0")[0] is False
    trimmed, mib = _in_fresh_process(TOPS, "in-flight", MALLOC_TRIM_THRESHOLD_="65536")  # as a Dask worker's nanny
    assert not trimmed and mib < 4  # the environment's threshold, not is2grid's, gave it back


def test_runs_in_flight_that_overlap_leave_the_thresholds_to_the_last_one(monkeypatch):
    calls: list[tuple[int, int]] = []

    class Libc:
        def mallopt(self, param: int, value: int) -> int:
            calls.append((param, value))
            return 1

    monkeypatch.setattr(_malloc, "_libc", lambda: Libc())
    monkeypatch.setattr(_malloc, "_thresholds_free", lambda: True)
    with _malloc.tops_trimmed() as first:
        with _malloc.tops_trimmed() as second:
            assert first and second
        set_once = [(_malloc._M_MMAP_THRESHOLD, _malloc.MMAP_THRESHOLD), (_malloc._M_TRIM_THRESHOLD, _malloc.TOP_KEPT)]
        assert calls == set_once
    assert calls[-1] == (_malloc._M_TRIM_THRESHOLD, 2 * _malloc.MMAP_THRESHOLD)  # where glibc's own rise ends
    assert len(calls) == 3
