"""Cheap plugin import, and the gridded result as a georeferenced raster to other tools."""

from __future__ import annotations

import subprocess
import sys

import xarray as xr


def test_importing_the_plugin_does_not_import_heavy_dependencies():
    code = (
        # list_engines() would import every installed plugin (h5coro ships its own, which imports boto3)
        "import sys, is2grid.xarray_plugin as p; p.ATL10BackendEntrypoint().guess_can_open('x.h5'); "
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
