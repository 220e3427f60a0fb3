"""The fixes is2grid makes to h5coro, as the patch kept for upstream: it applies to h5coro 1.0.7 and fixes them."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from importlib import metadata
from pathlib import Path

import h5py
import numpy as np
import pytest

from .conftest import REAL_VALID

PATCH = Path(__file__).parents[1] / "src" / "is2grid" / "io" / "patches" / "h5coro-1.0.7.diff"


@pytest.fixture(scope="module")
def patched(tmp_path_factory):
    """A copy of the installed h5coro with the patch applied (by patch(1), as upstream would)."""
    if shutil.which("patch") is None:
        pytest.skip("patch(1) is not installed")
    assert metadata.version("h5coro") == "1.0.7", "the patch is for h5coro 1.0.7: make one for the new release"
    import h5coro

    root = tmp_path_factory.mktemp("h5coro")
    shutil.copytree(Path(h5coro.__file__).parent, root / "h5coro")
    run = subprocess.run(["patch", "-p1", "-i", str(PATCH)], cwd=root, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    return root


def _run(root: Path, code: str, check: bool = True) -> str:
    run = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
    )
    assert run.returncode == 0 or not check, run.stderr[-2000:]
    return run.stdout.strip()


LISTING = """
    import sys
    from h5coro import filedriver, h5coro
    h5 = h5coro.H5Coro({path!r}, filedriver.FileDriver, errorChecking=True)
    variables, attributes, groups = h5.list("METADATA/AcquisitionInformation/lidar", w_attr=False)
    print(sorted(groups) + sorted(variables))
"""


def test_group_members_are_not_matched_by_prefix(patched):
    """``lidar`` and ``lidarDocument`` are siblings: unpatched h5coro lists ``Document`` under ``lidar``."""
    import h5coro

    original = Path(h5coro.__file__).parents[1]
    with h5py.File(REAL_VALID) as f:
        expected = sorted(f["METADATA/AcquisitionInformation/lidar"])
    assert "Document" in _run(original, LISTING.format(path=str(REAL_VALID)))
    assert _run(patched, LISTING.format(path=str(REAL_VALID))) == str(expected)


def test_a_sixteen_byte_fill_value_keeps_the_rest_of_the_header(patched, tmp_path):
    """A variable-length string dataset with a fill value (as nccopy writes them): its layout must still be read."""
    path = tmp_path / "vlen.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("text", data=np.array([b"abc", b"de"], dtype=object), dtype=h5py.string_dtype(),
                         fillvalue=b"")  # fmt: skip
        f.create_dataset("numbers", data=np.arange(3, dtype="f8"), fillvalue=-1.0)
    code = f"""
        from h5coro import filedriver, h5coro
        from h5coro.h5dataset import H5Dataset
        h5 = h5coro.H5Coro({str(path)!r}, filedriver.FileDriver, errorChecking=True)
        meta = H5Dataset(h5, "/text", earlyExit=True, metaOnly=True, enableAttributes=False).meta
        print(meta.fillsize, meta.layout is not None, meta.dimensions)
    """
    import h5coro

    assert _run(Path(h5coro.__file__).parents[1], code, check=False) != "16 True [2]"  # h5coro 1.0.7 loses it
    assert _run(patched, code) == "16 True [2]"
