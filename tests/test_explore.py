"""Exploration helpers without a browser: region time series, sel_lonlat, the views' contents, the CLI."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

import is2grid
from is2grid import cli, tutorial, workflow
from is2grid.grid import reduction, regions, timeseries
from is2grid.grid.grids import ease2_grid, nsidc_polar_stereo_grid, to_xy
from is2grid.viz import explore


@pytest.fixture(scope="module")
def month(tmp_path_factory):
    return tutorial.sample_month(tmp_path_factory.mktemp("sample"), n_segments=1500)


@pytest.fixture(scope="module")
def segments(month):
    return is2grid.open_granules(month[:10])


@pytest.fixture(scope="module")
def daily(segments):
    return segments.is2grid.to_ease2(res=25000)


def brute_force_series(ds, region, res, freq="1D"):
    """Independent reference: every kept segment, its cell centre, the region test, sums per day in pandas."""
    grid = ease2_grid("south", res)
    fb = ds.beam_fb_height.values.astype(float)
    length = ds.height_segment_length_seg.values.astype(float)
    keep = np.isfinite(fb) & (length > 0)
    x, y = to_xy(ds.longitude.values[keep], ds.latitude.values[keep], grid.crs)
    col = np.floor((x - grid.x0) / res)
    row = np.floor((grid.y0 - y) / res)
    cx, cy = grid.x0 + (col + 0.5) * res, grid.y0 - (row + 0.5) * res
    from pyproj import Transformer

    lon, lat = Transformer.from_crs(grid.crs, "EPSG:4326", always_xy=True).transform(cx, cy)
    inside = region.contains(lon, lat)
    frame = pd.DataFrame(
        {
            "day": pd.to_datetime(ds.delta_time.values[keep]).floor(freq),
            "L": length[keep],
            "h": fb[keep],
        }
    )[inside]
    out = {}
    for day, g in frame.groupby("day"):
        mean = (g.L * g.h).sum() / g.L.sum()
        var = (g.L * g.h**2).sum() / g.L.sum() - mean**2
        out[day] = (len(g), mean, np.sqrt(max(var, 0.0)))
    return out


@pytest.mark.parametrize("name", ["ross", "weddell", "indian", "southern_ocean"])
def test_region_series_equal_a_brute_force_reference_and_each_other(segments, daily, name):
    area = regions.region(name)
    from_grid = daily.is2grid.timeseries(name)
    from_segments = segments.is2grid.timeseries(name, freq="1D", res=25000)
    expected = brute_force_series(segments, area, 25000)
    assert from_grid.sizes["time"] == daily.sizes["time"]
    np.testing.assert_array_equal(from_grid.time.values, from_segments.time.values)
    np.testing.assert_array_equal(from_grid.n_segments.values, from_segments.n_segments.values)
    np.testing.assert_allclose(from_grid.mean_fb.values, from_segments.mean_fb.values, rtol=1e-12, equal_nan=True)
    np.testing.assert_allclose(
        from_grid.std_fb.values, from_segments.std_fb.values, rtol=1e-9, atol=1e-12, equal_nan=True
    )
    for t, n, mean, std in zip(from_grid.time.values, from_grid.n_segments.values, from_grid.mean_fb.values,
                               from_grid.std_fb.values, strict=True):  # fmt: skip
        if n == 0:
            assert np.isnan(mean) and pd.Timestamp(t) not in expected, "empty bins are gaps"
            continue
        ref = expected[pd.Timestamp(t)]
        assert n == ref[0]
        np.testing.assert_allclose([mean, std], ref[1:], rtol=1e-9, atol=1e-12)
    assert from_grid.attrs["region_source"] == area.source and from_grid.mean_fb.attrs["units"] == "m"


def test_region_series_from_a_store_and_errors(month, tmp_path):
    stored = workflow.grid_granules(month[:6], res=25000, progress=False, store=tmp_path / "s.zarr")
    in_memory = workflow.grid_granules(month[:6], res=25000, progress=False)
    a, b = stored.is2grid.timeseries("ross"), in_memory.is2grid.timeseries("ross")
    np.testing.assert_array_equal(a.n_segments.values, b.n_segments.values)
    np.testing.assert_allclose(a.mean_fb.values, b.mean_fb.values, rtol=1e-6, equal_nan=True)  # float32 store
    sparse = workflow.grid_granules(month[:2], res=25000, progress=False, min_segments=3)
    with pytest.raises(is2grid.GridError, match="min_segments"):
        timeseries.region_timeseries(sparse, "ross")
    with pytest.raises(is2grid.GridError, match="no cell"):
        timeseries.region_timeseries(in_memory.isel(x=slice(0, 2), y=slice(0, 2)), "ross")


@settings(max_examples=25, deadline=None)
@given(
    lon=st.lists(st.floats(-180, 180), min_size=1, max_size=20),
    lat=st.lists(st.floats(-80, -50), min_size=1, max_size=20),
)
def test_sel_lonlat_picks_the_cell_holding_the_point(lon, lat):
    n = min(len(lon), len(lat))
    lon, lat = np.array(lon[:n]), np.array(lat[:n])
    grid = ease2_grid("south", 100000)
    gridded = xr.Dataset(
        {"n_segments": (("y", "x"), np.arange(grid.nrows * grid.ncols).reshape(grid.shape))},
        coords={"x": grid.x, "y": grid.y, "crs": ((), 0, grid.cf_grid_mapping())},
        attrs={"grid_resolution_m": 100000.0},
    )
    picked = gridded.is2grid.sel_lonlat(lon, lat)
    x, y = to_xy(lon, lat, grid.crs)
    assert (np.abs(picked.x.values - x) <= 50000 + 1e-6).all() and (np.abs(picked.y.values - y) <= 50000 + 1e-6).all()
    np.testing.assert_array_equal(picked.lon.values, lon)


def test_sel_lonlat_scalar_and_outside(daily, segments):
    one = daily.is2grid.sel_lonlat(float(segments.longitude[0]), float(segments.latitude[0]))
    assert one.n_segments.dims == ("time",) and int(one.n_segments.sum()) > 0
    with pytest.raises(is2grid.GridError, match=r"outside this grid's window: \(0, 60\)"):
        daily.is2grid.sel_lonlat([0.0], [60.0])


GRIDS = [ease2_grid("south", 25000), ease2_grid("north", 25000), nsidc_polar_stereo_grid("north"),
         nsidc_polar_stereo_grid("south")]  # fmt: skip


@pytest.mark.parametrize("grid", GRIDS, ids=lambda g: g.name)
def test_projection_parameters_describe_each_grid(grid):
    params = explore.projection_parameters(grid.cf_grid_mapping())
    assert params["kind"] == ("laea" if "EASE" in grid.name else "stere")
    assert params["south"] == (grid.hemisphere == "south")


def test_grid_explorer_frames_fit_the_page_and_combine_exactly(daily):
    view = daily.is2grid.explore(max_bytes=2e5)
    assert view.details["factor"] > 1 and view.details["frames"] == daily.sizes["time"]
    combined = explore._coarsened(daily.isel(time=3), view.details["factor"], list(reduction.STATISTICS))
    assert int(combined["n_segments"].sum()) == int(daily.n_segments.isel(time=3).sum()), "no segment lost"
    page = view.html()
    assert "cdn.bokeh.org" not in page.split("<body")[0] and "static/extensions" not in page
    assert "length-weighted mean sea ice freeboard (m)" in page
    with pytest.raises(is2grid.GridError, match="choose one of"):
        daily.is2grid.explore("freeboard")
    with pytest.raises(is2grid.GridError, match="empty"):
        daily.isel(time=slice(0, 0)).is2grid.explore()


def test_explore_dispatches_on_what_it_is_given(daily, segments):
    assert daily.is2grid.explore().kind == "bokeh"
    assert segments.is2grid.explore().kind == "holoviews"
    assert segments.is2grid.explore(color="beam").details["segments"] == int(segments.beam_fb_height.count())
    assert daily.is2grid.timeseries("ross").is2grid.explore().kind == "holoviews"
    assert "<iframe srcdoc=" in daily.is2grid.explore()._repr_html_()
    with pytest.raises(is2grid.GridError, match="color="):
        segments.is2grid.explore(color="height")


def test_cli_timeseries_and_explore_save(month, tmp_path, capsys):
    nc = tmp_path / "g.nc"
    assert cli.main(["grid", *map(str, month[:8]), "--out", str(nc), "--res", "25000"]) == 0
    csv, png, page = tmp_path / "ross.csv", tmp_path / "ross.png", tmp_path / "ross.html"
    code = cli.main(
        ["timeseries", str(nc), "--region", "ross", "--csv", str(csv), "--png", str(png), "--html", str(page)]
    )
    assert code == 0
    frame = pd.read_csv(csv, parse_dates=["time"])
    assert list(frame.columns) == ["time", "n_segments", "mean_fb", "std_fb", "mean_seg_length", "n_cells"]
    direct = timeseries.region_timeseries(xr.open_dataset(nc), "ross")
    np.testing.assert_array_equal(frame.n_segments.values, direct.n_segments.values)
    assert png.stat().st_size > 10_000 and page.stat().st_size > 100_000
    from_granules = tmp_path / "g.csv"
    assert (
        cli.main(
            ["timeseries", *map(str, month[:8]), "--region", "ross", "--res", "25000", "--csv", str(from_granules)]
        )
        == 0
    )
    np.testing.assert_array_equal(pd.read_csv(from_granules).n_segments.values, frame.n_segments.values)
    saved = tmp_path / "map.html"
    assert cli.main(["explore", str(nc), "--save", str(saved)]) == 0 and saved.stat().st_size > 100_000
    assert cli.main(["explore", *map(str, month[:2]), "--save", str(tmp_path / "seg.html")]) == 0
    assert cli.main(["timeseries", str(nc), "--region", "atlantis"]) == 2
    assert "Named regions" in capsys.readouterr().err


def test_combined_cells_use_the_sums_they_have():
    """k x k cells combine from their sums; a cell without statistics (min_segments) adds to the count only."""
    nan = np.nan
    frame = xr.Dataset(
        {
            "n_segments": (("y", "x"), np.array([[5, 1], [4, 0]])),
            "mean_seg_length": (("y", "x"), np.array([[10.0, nan], [20.0, nan]])),
            "mean_fb": (("y", "x"), np.array([[0.2, nan], [0.5, nan]])),
            "std_fb": (("y", "x"), np.array([[0.0, nan], [0.0, nan]])),
        }
    )
    combined = explore._coarsened(frame, 2, list(reduction.STATISTICS))
    assert int(combined["n_segments"][0, 0]) == 10
    np.testing.assert_allclose(combined["mean_seg_length"][0, 0], (5 * 10 + 4 * 20) / 9, rtol=1e-6)
    np.testing.assert_allclose(combined["mean_fb"][0, 0], (50 * 0.2 + 80 * 0.5) / 130, rtol=1e-6)
