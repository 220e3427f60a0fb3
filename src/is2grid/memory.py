"""How much memory this process can still take: the machine's, its container's (cgroup) and its own limits.

A JupyterHub pod (CryoCloud), a Kubernetes or Coiled worker, or a shell with ``ulimit -v`` gives a
process far less than the machine's free memory. The memory budget takes the smallest of what each
of them leaves, so a result that cannot fit is refused with :class:`is2grid.MemoryBudgetError`
before it is built, instead of numpy's ``MemoryError`` or the kernel's OOM killer ending the kernel.
"""

from __future__ import annotations

import contextlib
import os
import resource
from pathlib import Path

__all__ = ["available_memory", "budget", "memory_limits"]


def available_memory() -> int:
    """Bytes a new allocation can take now: the smallest of :func:`memory_limits`.

    Examples
    --------
    >>> available_memory() > 0
    True
    """
    return min(memory_limits().values())


def memory_limits(proc: str | os.PathLike = "/proc") -> dict[str, int]:
    """What each limit leaves, in bytes: ``machine``, and where they apply ``cgroup`` and ``address space``.

    - ``machine``: ``MemAvailable`` of ``/proc/meminfo`` (physical memory where there is none);
    - ``cgroup``: the tightest ``memory.max`` (cgroup v2) or ``memory.limit_in_bytes`` (v1) of the
      process's memory cgroup and its parents, less what each already uses;
    - ``address space``: ``RLIMIT_AS`` (``ulimit -v``) less the process's virtual size (``VmSize``).

    Examples
    --------
    >>> limits = memory_limits()
    >>> "machine" in limits and all(v >= 0 for v in limits.values())
    True
    """
    proc = Path(proc)
    limits = {"machine": _meminfo(proc)}
    cgroup = _cgroup_room(proc)
    if cgroup is not None:
        limits["cgroup"] = cgroup
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY:
        limits["address space"] = max(0, soft - _status_bytes(proc, "VmSize"))
    return limits


def _meminfo(proc: Path) -> int:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in (proc / "meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def _status_bytes(proc: Path, key: str) -> int:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in (proc / "self" / "status").read_text().splitlines():
            if line.startswith(f"{key}:"):
                return int(line.split()[1]) * 1024
    return 0


def _cgroup_room(proc: Path) -> int | None:
    """The least room any memory cgroup of this process (or a parent) leaves, None without a limit."""
    try:
        memberships = (proc / "self" / "cgroup").read_text().splitlines()
        mounts = (proc / "self" / "mountinfo").read_text().splitlines()
    except OSError:
        return None
    rooms = []
    for line in memberships:
        hierarchy, controllers, path = line.split(":", 2)
        if hierarchy == "0" and controllers == "":
            files = ("memory.max", "memory.current")
            mount = _mount_of(mounts, "cgroup2", None)
        elif "memory" in controllers.split(","):
            files = ("memory.limit_in_bytes", "memory.usage_in_bytes")
            mount = _mount_of(mounts, "cgroup", "memory")
        else:
            continue
        if mount is None:
            continue
        root, point = mount
        relative = os.path.relpath(path, root) if path.startswith(root) else None
        if relative is None or relative.startswith(".."):
            continue  # the process's cgroup is not visible in this mount
        folder = Path(point) / relative
        while True:
            room = _room(folder, *files)
            if room is not None:
                rooms.append(room)
            if folder == Path(point) or folder.parent == folder:
                break
            folder = folder.parent
    return min(rooms) if rooms else None


def _mount_of(mounts: list[str], fstype: str, option: str | None) -> tuple[str, str] | None:
    """(root within the hierarchy, mount point) of a cgroup mount, from ``/proc/self/mountinfo``."""
    for line in mounts:
        fields = line.split()
        if "-" not in fields:
            continue
        dash = fields.index("-")
        if fields[dash + 1] != fstype:
            continue
        if option is not None and option not in fields[dash + 3].split(","):
            continue
        return fields[3], fields[4]
    return None


def _room(folder: Path, limit_file: str, usage_file: str) -> int | None:
    try:
        limit = (folder / limit_file).read_text().strip()
        usage = int((folder / usage_file).read_text().strip())
    except (OSError, ValueError):
        return None
    if limit == "max" or int(limit) >= 1 << 60:  # v2 "max", v1's page-rounded LONG_MAX: no limit
        return None
    return max(0, int(limit) - usage)


def budget(memory_budget: float | str | None) -> float | None:
    """Bytes a dense in-memory result may take: ``"auto"`` half of :func:`available_memory`, None no limit.

    Examples
    --------
    >>> budget(8e9), budget(None)
    (8000000000.0, None)
    """
    from is2grid.errors import GridError

    if memory_budget is None:
        return None
    if memory_budget == "auto":
        return 0.5 * available_memory()
    if isinstance(memory_budget, str) or memory_budget <= 0:
        raise GridError(f"memory_budget={memory_budget!r}: give bytes (e.g. 8e9), 'auto' or None.")
    return float(memory_budget)
