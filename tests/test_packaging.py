"""Cheap plugin import, and the gridded result as a georeferenced raster to other tools."""

from __future__ import annotations

import subprocess
import sys

import xarray as xr


def test_importing_the_plugin_does_not_import_heavy_dependencies():
    code = (
        # list_engines() would import every installed plugin (h5coro ships its own, which imports boto3)
        "import sys, is2grid.backend.entrypoints as p; p.ATL10BackendEntrypoint().guess_can_open('x.h5'); "
        "print(sorted(m for m in ('h5coro', 'boto3', 'pyproj', 'dask', 'matplotlib', 'cartopy', 'flox', 'h5py') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_rioxarray_reads_the_grid_mapping(synthetic):
    import rioxarray  # noqa: F401

    grid = xr.open_dataset(synthetic["south-backward"], engine="atl10").is2grid.to_ease2(res=25000)
    mean = grid.mean_fb.isel(time=0)
    assert mean.rio.crs.to_epsg() == 6932
    transform = mean.rio.transform()
    assert transform.a == 25000 and transform.e == -25000
    assert transform.c == float(grid.x[0]) - 12500 and transform.f == float(grid.y[0]) + 12500


def test_every_data_file_of_the_package_is_declared_for_wheels():
    """Editable installs see every file; wheels only those in package-data (the coastlines were once missed)."""
    import fnmatch
    import tomllib
    from pathlib import Path

    root = Path(__file__).parents[1]
    patterns = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["is2grid"]
    package = root / "src" / "is2grid"
    data = [
        p.relative_to(package).as_posix() for p in package.rglob("*") if p.is_file() and p.suffix not in (".py", ".pyc")
    ]
    missing = [f for f in data if not any(fnmatch.fnmatch(f, pattern) for pattern in patterns)]
    assert data and not missing
