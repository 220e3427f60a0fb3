"""hvplot and GeoViews on is2grid's outputs with the network blocked: each grid's CRS, its own projection, coastlines.

The calls are the ones a Pangeo user types; nothing here passes a CRS or a projection for a grid.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
import xarray as xr

import is2grid
from is2grid import workflow
from is2grid.viz import geo

hv = pytest.importorskip("holoviews")
pytest.importorskip("geoviews")
import hvplot.xarray  # noqa: E402,F401

#: a script's first lines in a child process: no connection leaves the machine
BLOCK_NETWORK = """
import socket
_connect = socket.socket.connect
def _local_only(self, address):
    if isinstance(address, tuple) and address[0] not in ("127.0.0.1", "::1"):
        raise OSError(f"network blocked: {address}")
    return _connect(self, address)
socket.socket.connect = _local_only
"""


@pytest.fixture(autouse=True)
def offline(no_network, monkeypatch, tmp_path):
    """No connection leaves the machine, and cartopy's own download folder starts empty."""
    import cartopy

    monkeypatch.setitem(cartopy.config, "data_dir", str(tmp_path / "cartopy-data"))
    with warnings.catch_warnings():
        from cartopy.io import DownloadWarning

        warnings.simplefilter("error", DownloadWarning)
        yield


@pytest.fixture(scope="module")
def outputs(tmp_path_factory, sample_month):
    folder = tmp_path_factory.mktemp("hvplot")
    month = sample_month
    grid = workflow.grid_granules(month[:4], res=25000, progress=False)
    workflow.write_netcdf(grid, folder / "grid.nc")
    workflow.grid_granules(month[:4], res=25000, progress=False, store=folder / "grid.zarr")
    return {"month": month, "memory": grid, "netcdf": folder / "grid.nc", "zarr": folder / "grid.zarr"}


def opened(outputs, source):
    if source == "netcdf":
        return xr.open_dataset(outputs["netcdf"])
    if source == "zarr":
        return xr.open_zarr(outputs["zarr"])
    return outputs["memory"]


def renderers(figure, glyph: str) -> list:
    return [r for r in figure.renderers if type(r.glyph).__name__ == glyph]


@pytest.mark.parametrize("source", ["memory", "netcdf", "zarr"])
def test_a_grid_is_drawn_in_its_own_projection_with_bundled_coastlines(outputs, source):
    grid = opened(outputs, source)
    plot = grid.mean_fb.hvplot.image(x="x", y="y", groupby="time", geo=True, coastline=True)
    first = plot[plot.kdims[0].values[0]] if isinstance(plot, hv.DynamicMap) else plot
    image = first.Image.I
    assert image.crs.proj4_params["proj"] == "laea" and image.crs.proj4_params["lat_0"] == -90
    figure = hv.render(plot, backend="bokeh")
    # metres of the grid, not degrees and not Web Mercator
    assert -9e6 < figure.x_range.start < figure.x_range.end < 9e6
    lines = renderers(figure, "MultiLine")
    xs = np.concatenate([np.asarray(x, dtype=float) for r in lines for x in r.data_source.data["xs"]])
    assert xs.size > 500 and np.nanmax(np.abs(xs)) < 1.3e7, "Natural Earth coastlines, projected into the grid"


def test_land_feature_and_an_explicit_projection(outputs):
    import cartopy.crs as ccrs

    grid = outputs["memory"]
    plot = grid.n_segments.sum("time").hvplot.image(x="x", y="y", geo=True, features=["land"], cmap="viridis")
    assert renderers(hv.render(plot, backend="bokeh"), "MultiPolygons") or renderers(
        hv.render(plot, backend="bokeh"), "Patches"
    )
    stereo = grid.mean_fb.isel(time=0).hvplot.image(
        x="x", y="y", geo=True, coastline=True, projection=ccrs.SouthPolarStereo()
    )
    assert hv.render(stereo, backend="bokeh").x_range.end < 1.5e7


def test_segments_as_points_rasterized_on_a_map(outputs):
    import cartopy.crs as ccrs

    ds = is2grid.open_granules(outputs["month"][:2])
    plot = ds.hvplot.points("longitude", "latitude", c="beam_fb_height", geo=True, rasterize=True, coastline=True)
    hv.render(plot, backend="bokeh")
    polar = ds.hvplot.points(
        "longitude", "latitude", c="beam_fb_height", geo=True, rasterize=True, coastline=True,
        projection=ccrs.LambertAzimuthalEqualArea(central_latitude=-90),
    )  # fmt: skip
    figure = hv.render(polar, backend="bokeh")
    assert -9e6 < figure.x_range.start < figure.x_range.end < 9e6


def test_same_crs_extents_need_no_projection_of_the_boundary():
    import cartopy.crs as ccrs
    from geoviews.util import project_extents

    laea = ccrs.LambertAzimuthalEqualArea(central_latitude=-90)
    assert getattr(project_extents, "_is2grid", False), "the workaround is installed"
    assert project_extents((-3e6, -2e6, 3e6, 2e6), laea, laea) == pytest.approx((-3e6, -2e6, 3e6, 2e6), abs=1)
    assert "dest_poly" in geo.UPSTREAM_FIX


def test_bundled_natural_earth_is_found_and_other_scales_are_not_claimed():
    import cartopy.io.shapereader as shapereader

    path = shapereader.natural_earth(resolution="110m", category="physical", name="coastline")
    assert str(path).startswith(str(geo.NATURAL_EARTH))
    records = list(shapereader.Reader(path).geometries())
    assert len(records) > 100
    assert geo.natural_earth_path("50m", "physical", "coastline") is None


def test_plain_xarray_and_hvplot_imported_first_in_a_fresh_process(outputs, tmp_path):
    """A user who never imports is2grid: xarray's backend discovery loads it, and the plot still works offline."""
    script = BLOCK_NETWORK + textwrap.dedent(
        f"""
        import hvplot.xarray
        import holoviews as hv
        import xarray as xr
        import cartopy
        cartopy.config["data_dir"] = {str(tmp_path / "empty")!r}
        grid = xr.open_dataset({str(outputs["netcdf"])!r})
        plot = grid.mean_fb.hvplot.image(x="x", y="y", groupby="time", geo=True, coastline=True)
        figure = hv.render(plot, backend="bokeh")
        print("x range", figure.x_range.start, figure.x_range.end)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    start, end = (float(v) for v in done.stdout.split()[-2:])
    assert -9e6 < start < end < 9e6
    assert "Downloading" not in done.stderr


@pytest.mark.parametrize("source", ["memory", "netcdf", "zarr"])
def test_titles_name_the_time_bin_not_the_grid_mapping(outputs, source):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = opened(outputs, source)
    one = grid.mean_fb.isel(time=0)
    day = str(one.time.values)[:10]
    assert "crs" in one.coords and one.rio.crs is not None  # still a coordinate: rioxarray and hvplot read it
    assert one.plot().axes.get_title() == f"time = {day}"
    plt.close("all")
    assert hv.render(one.hvplot.image(x="x", y="y")).title.text == f"time = {day}"
    # any other scalar coordinate is titled as before
    assert one.assign_coords(beam="gt1r")._title_for_slice() == f"time = {day}, beam = gt1r"
    plain = one.assign_coords(crs=xr.DataArray(0))
    assert plain._title_for_slice() == f"crs = 0, time = {day}"
