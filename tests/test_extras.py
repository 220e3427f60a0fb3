"""The core works without the extras, and a missing extra is a named error that says what to install."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

import is2grid
from is2grid import _extras

ROOT = Path(__file__).parents[1]
BLOCKED = sorted({m for modules in _extras.EXTRAS.values() for m in modules} | {"hvplot", "geoviews"})


def test_the_core_dependencies_leave_out_the_extras():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = {d.split("[")[0].split(">")[0].split("=")[0].split("<")[0].strip().lower() for d in project["dependencies"]}
    extras = project["optional-dependencies"]
    assert not core & {"matplotlib", "cartopy", "hvplot", "holoviews", "panel", "bokeh", "datashader", "dask",
                       "distributed", "earthaccess"}  # fmt: skip
    assert {"viz", "dask", "earthdata", "all"} <= set(extras)
    assert extras["all"] == ["is2grid[viz,dask,earthdata]"]
    for extra, modules in _extras.EXTRAS.items():
        declared = " ".join(extras[extra]).lower()
        assert all(m.lower() in declared for m in modules), extra


def test_the_whole_core_path_runs_with_the_extras_unimportable(tmp_path):
    """Open, grid, NetCDF, Zarr and the CLI's grid, in a process where no extra can be imported."""
    script = textwrap.dedent(f"""
        import sys

        for name in {BLOCKED!r}:  # as if not installed: importing fails, find_spec finds nothing
            sys.modules[name] = None
        import xarray as xr
        import is2grid
        from is2grid import cli, tutorial, workflow
        from is2grid.errors import MissingExtraError

        folder = {str(tmp_path)!r}
        paths = [tutorial.write_granule(folder, n_segments=800, rgt=r) for r in (11, 22)]
        ds = xr.open_dataset(paths[0], engine="atl10")
        grid = ds.is2grid.to_ease2(res=25000)
        workflow.write_netcdf(grid, folder + "/one.nc")
        stored = workflow.grid_granules(paths, res=25000, progress=False, store=folder + "/s.zarr")
        assert int(stored.n_segments.sum()) > 0
        assert cli.main(["grid", *map(str, paths), "--res", "25000", "--out", folder + "/cli.nc"]) == 0
        heights = xr.open_dataset(tutorial.write_granule(folder, product="ATL07", n_segments=500), engine="atl07")
        heights.is2grid.to_ease2(res=25000)

        for call, extra in (
            (lambda: grid.is2grid.explore(), "viz"),
            (lambda: __import__("is2grid.viz.plot", fromlist=["quicklook"]).quicklook(grid, "mean_fb"), "viz"),
            (lambda: is2grid.search("ross", "2019-09"), "earthdata"),
        ):
            try:
                call()
            except MissingExtraError as err:
                assert f"is2grid[{{extra}}]" in str(err), err
            else:
                raise AssertionError("no MissingExtraError")
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in {BLOCKED!r} and sys.modules[m] is not None)
        print("OK", loaded)
    """)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.strip().splitlines()[-1] == "OK []"


def test_a_missing_extra_names_it(monkeypatch):
    monkeypatch.setitem(_extras.EXTRAS, "viz", ("no_such_module_for_is2grid",))
    with pytest.raises(is2grid.MissingExtraError, match=r"pip install 'is2grid\[viz\]'"):
        _extras.need("viz", "the explorer")
    assert issubclass(is2grid.MissingExtraError, ImportError)
