"""Exploration helpers without a browser: region time series, sel_lonlat, the views' contents, the CLI."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

import is2grid
from is2grid import cli, workflow
from is2grid.grid import reduction, regions, timeseries
from is2grid.grid.grids import ease2_grid, to_xy
from is2grid.viz import cells, explore


@pytest.fixture(scope="module")
def month(sample_month):
    return sample_month


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


def frame_of(view, t: int, statistic: str):
    """The cells a view draws for bin ``t`` (a pandas DataFrame), at the current zoom."""
    key = (view.is2grid["starts"][t], statistic)
    return view[key].Rectangles.I.dframe()


def test_grid_explorer_is_a_holoviews_object_to_overlay_and_lay_out(daily):
    import holoviews as hv

    view = daily.is2grid.explore()
    assert isinstance(view, hv.DynamicMap) and [d.name for d in view.kdims] == ["time", "statistic"]
    assert view.kdims[1].default == "mean_fb" and view.kdims[1].values == list(reduction.STATISTICS)
    assert isinstance(view + view, hv.Layout)
    overlaid = view * hv.Points([(0.0, 0.0)])
    assert isinstance(hv.render(overlaid, backend="bokeh").renderers, list)
    assert "length-weighted mean sea ice freeboard" in explore.html(view)


def test_cells_drawn_are_the_grid_cells_with_their_centres_from_proj(daily):
    """At the page's resolution (1 here) each rectangle is one grid cell: its statistics, count, lat/lon."""
    view = daily.is2grid.explore()
    assert view.is2grid["page_factor"] == 1
    t = 3
    frame = frame_of(view, t, "mean_fb")
    one = daily.isel(time=t)
    assert len(frame) == int(np.isfinite(one.mean_fb.values).sum())
    x, y = (frame.x0 + frame.x1) / 2, (frame.y0 + frame.y1) / 2
    cells = one.sel(x=xr.DataArray(x.values, dims="c"), y=xr.DataArray(y.values, dims="c"))
    np.testing.assert_allclose(frame.mean_fb, cells.mean_fb.values, rtol=1e-6)
    np.testing.assert_array_equal(frame.n_segments, cells.n_segments.values)
    centres = daily.is2grid.latlon().sel(x=xr.DataArray(x.values, dims="c"), y=xr.DataArray(y.values, dims="c"))
    np.testing.assert_allclose(frame.latitude, centres.lat.values, atol=2e-5)
    dlon = (frame.longitude - centres.lon.values + 180) % 360 - 180
    assert np.abs(dlon).max() < 2e-5
    counts = frame_of(view, t, "n_segments")
    assert int(counts.n_segments.sum()) == int(one.n_segments.sum()), "every occupied cell is drawn"


def test_a_page_too_large_combines_cells_exactly_and_says_so(daily, tmp_path):
    view = daily.is2grid.explore(max_bytes=1e5)
    k = view.is2grid["page_factor"]
    assert k > 1 and view.is2grid["page_cell_bytes"] <= 1e5
    frame = frame_of(view, 3, "n_segments")
    assert int(frame.n_segments.sum()) == int(daily.n_segments.isel(time=3).sum()), "no segment lost"
    assert np.allclose(frame.x1 - frame.x0, 25000 * k)
    title = view[(view.is2grid["starts"][3], "mean_fb")].Rectangles.I.opts.get().kwargs["title"]
    assert title.endswith(f"at {25 * k:g} km, cells combined {k} x {k}")
    page = explore.save(view, tmp_path / "small.html")
    text = open(page, encoding="utf-8").read()
    assert "cdn.bokeh.org" not in text and "cdn.holoviz.org" not in text and "static/extensions" not in text


def test_zooming_in_refines_to_the_grid_and_zooming_out_combines(daily):
    """Cells are combined only when more than the map's pixels are in view (and no more than on the page)."""
    view = daily.is2grid.explore(max_bytes=1e5, width=100)
    k = view.is2grid["page_factor"]
    ranges = view.is2grid["zoom"]
    frame = frame_of(view, 3, "n_segments")
    x, y = float(frame.x0.iloc[0]), float(frame.y0.iloc[0])
    ranges.event(x_range=(x - 200_000, x + 200_000), y_range=(y - 200_000, y + 200_000))
    zoomed = frame_of(view, 3, "n_segments")
    assert np.allclose(zoomed.x1 - zoomed.x0, 25000), "zoomed in: the cells as gridded"
    inside = (
        (zoomed.x1 >= x - 200_000)
        & (zoomed.x0 <= x + 200_000)
        & (zoomed.y1 >= y - 200_000)
        & (zoomed.y0 <= y + 200_000)
    )
    assert inside.all() and len(zoomed) > 0
    ranges.event(x_range=(-9e6, 9e6), y_range=(-9e6, 9e6))
    assert np.allclose(frame_of(view, 3, "n_segments").pipe(lambda f: f.x1 - f.x0), 25000 * k)


def test_the_map_draws_on_a_canvas_and_reports_settled_ranges_without_a_debounce(daily, segments):
    import holoviews as hv
    from holoviews.plotting.bokeh.callbacks import RangeXYCallback

    for view, backend in ((daily.is2grid.explore(), "canvas"), (segments.is2grid.explore(), "webgl")):
        figure = hv.render(view, backend="bokeh")
        assert (figure.output_backend, figure.lod_timeout, figure.lod_interval) == (backend, 100, 100)
    assert hv.render(daily.is2grid.explore(output_backend="webgl"), backend="bokeh").output_backend == "webgl"
    with pytest.raises(is2grid.GridError, match="output_backend='svg'"):
        daily.is2grid.explore(output_backend="svg")
    # the explorer's range stream is answered at once; other plots' RangeXY streams keep HoloViews' debounce
    stream = daily.is2grid.explore().is2grid["zoom"]
    callback = hv.streams.Stream._callbacks["bokeh"][type(stream)]
    assert isinstance(stream, hv.streams.RangeXY) and callback.debounce is None
    others = hv.streams.Stream._callbacks["bokeh"][hv.streams.RangeXY]  # HoloViews' own, or GeoViews' once imported
    assert issubclass(others, RangeXYCallback) and others.debounce == 100 and RangeXYCallback.debounce == 100


def test_one_track_is_framed_not_drawn_thousands_of_pixels_tall(month):
    import holoviews as hv

    one = is2grid.open_granules(month[:1])  # a strip about 8,000 km long and a few hundred km wide
    for view in (one.is2grid.explore(), one.is2grid.to_ease2(res=25000).is2grid.explore()):
        figure = hv.render(view, backend="bokeh")
        x, y = figure.x_range, figure.y_range
        aspect = (y.end - y.start) / (x.end - x.start)
        assert explore.FRAME_ASPECT[0] - 1e-9 <= aspect <= explore.FRAME_ASPECT[1] + 1e-9, aspect
        assert figure.height <= 720 * explore.FRAME_ASPECT[1] + 70


@given(st.floats(1e3, 1e7), st.floats(1e3, 1e7), st.floats(-5e6, 5e6), st.floats(-5e6, 5e6))
@settings(max_examples=200, deadline=None)
def test_framing_keeps_the_extent_and_bounds_the_aspect(width, height, x0, y0):
    extent = (x0, x0 + width, y0, y0 + height)
    fx0, fx1, fy0, fy1 = explore._framed(extent)
    assert fx0 <= x0 + 1e-6 and fx1 >= x0 + width - 1e-6 and fy0 <= y0 + 1e-6 and fy1 >= y0 + height - 1e-6
    low, high = explore.FRAME_ASPECT
    assert low * (1 - 1e-9) <= (fy1 - fy0) / (fx1 - fx0) <= high * (1 + 1e-9)


def test_explore_dispatches_on_what_it_is_given(daily, segments):
    import holoviews as hv

    assert isinstance(daily.is2grid.explore(), hv.DynamicMap)
    seg = segments.is2grid.explore()
    assert isinstance(seg, hv.DynamicMap) and seg.is2grid["segments"] == int(segments.beam_fb_height.count())
    beams = segments.is2grid.explore(color="beam")
    assert beams.is2grid["beams"] == sorted(set(segments.beam.values.astype(str)))
    assert isinstance(daily.is2grid.timeseries("ross").is2grid.explore(), hv.Overlay)
    assert "<iframe srcdoc=" in explore.embedded(daily.is2grid.explore()).data
    with pytest.raises(is2grid.GridError, match="color="):
        segments.is2grid.explore(color="height")
    with pytest.raises(is2grid.GridError, match="choose one of"):
        daily.is2grid.explore("freeboard")
    with pytest.raises(is2grid.GridError, match="empty"):
        daily.isel(time=slice(0, 0)).is2grid.explore()


def test_segments_hover_names_the_segment_under_the_pointer(segments):
    import holoviews as hv

    view = segments.is2grid.explore()
    tooltips = hv.render(view, backend="bokeh").select_one({"type": __import__("bokeh").models.HoverTool}).tooltips
    text = " ".join(str(getattr(m, "children", "")) for m in tooltips.references())
    for name in ("latitude", "longitude", "beam_fb_height", "beam", "time"):
        assert name in text, text


def test_a_save_after_a_live_session_logs_no_thread_error(daily, tmp_path):
    """Bokeh's curdoc() is process-wide and keeps a session's document when a server callback raised
    (as when a tab closes mid-update): a later save must not be taken for a foreign thread's session update."""
    import logging
    import weakref
    from types import SimpleNamespace

    import panel as pn
    from bokeh.document import Document
    from bokeh.io import doc as bokeh_doc

    # what a Bokeh server session's document carries
    request = SimpleNamespace(arguments={}, cookies={}, headers={})
    context = SimpleNamespace(session=object(), server_context=None, id="left-over", request=request)
    left_over = Document()
    left_over._session_context = lambda: context
    bokeh_doc._PATCHED_CURDOCS.append(weakref.ref(left_over))
    pn.state._loaded[left_over] = True
    logged: list[str] = []
    handler = logging.Handler(logging.ERROR)
    handler.emit = lambda record: logged.append(record.getMessage())  # type: ignore[method-assign]
    logging.getLogger("panel").addHandler(handler)  # Panel's loggers do not propagate to the root
    try:
        assert pn.state.curdoc is left_over and pn.state.loaded
        explore.save(daily.is2grid.explore(), tmp_path / "page.html")
    finally:
        logging.getLogger("panel").removeHandler(handler)
        bokeh_doc._PATCHED_CURDOCS.pop()
        pn.state._loaded.pop(left_over, None)
    assert not [m for m in logged if "unlocked" in m], logged[:1]
    assert (tmp_path / "page.html").stat().st_size > 100_000


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


@settings(max_examples=40, deadline=None)
@given(data=st.data(), k=st.integers(1, 4))
def test_combined_cells_equal_a_brute_force_combination(data, k):
    """k x k cells combine from their sums; a cell without statistics (min_segments) adds to the count only."""
    ny, nx = data.draw(st.integers(1, 7)), data.draw(st.integers(1, 7))
    counts = np.array(data.draw(st.lists(st.integers(0, 9), min_size=ny * nx, max_size=ny * nx))).reshape(ny, nx)
    lengths = np.array(data.draw(st.lists(st.floats(5, 50), min_size=ny * nx, max_size=ny * nx))).reshape(ny, nx)
    fbs = np.array(data.draw(st.lists(st.floats(-0.5, 2), min_size=ny * nx, max_size=ny * nx))).reshape(ny, nx)
    stds = np.array(data.draw(st.lists(st.floats(0, 0.5), min_size=ny * nx, max_size=ny * nx))).reshape(ny, nx)
    known = (counts > 0) & np.array(data.draw(st.lists(st.booleans(), min_size=ny * nx, max_size=ny * nx))).reshape(
        ny, nx
    )
    stds = np.where(counts == 1, 0.0, stds)  # one segment has no spread
    nan = np.where(known, 1.0, np.nan)
    frame = xr.Dataset(
        {
            name: (("y", "x"), v)
            for name, v in zip(reduction.STATISTICS, (counts, lengths * nan, fbs * nan, stds * nan), strict=True)
        }
    )
    combined = cells.occupied(frame, list(reduction.STATISTICS)).coarsened(k)
    got = combined.statistics()
    for i, (r, c) in enumerate(zip(combined.row, combined.col, strict=True)):
        block = (slice(r * k, r * k + k), slice(c * k, c * k + k))
        n, m = counts[block], known[block]
        assert got["count"][i] == n.sum()
        if not m.any():
            assert np.isnan(got["mean"][i])
            continue
        ww = n[m] * lengths[block][m]
        mean = (ww * fbs[block][m]).sum() / ww.sum()
        var = (ww * (stds[block][m] ** 2 + fbs[block][m] ** 2)).sum() / ww.sum() - mean**2
        np.testing.assert_allclose(got["mean"][i], mean, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(got["mean_length"][i], ww.sum() / n[m].sum(), rtol=1e-9)
        np.testing.assert_allclose(got["std"][i], np.sqrt(max(var, 0.0)), rtol=1e-6, atol=1e-6)
    assert int(combined.count.sum()) == int(counts.sum()) and len(combined) == len(
        {(r // k, c // k) for r, c in zip(*np.nonzero(counts > 0), strict=True)}
    )


def test_projection_over_threads_is_exact_and_reuses_the_process_pool(monkeypatch):
    """Large inputs are split over the process's pool (no pool, and no thread, per call) with the same result."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from is2grid import _threads

    # a pool of one thread: once started it is full, so no race with its idle count can start another
    monkeypatch.setattr(_threads, "_POOL", ThreadPoolExecutor(1, thread_name_prefix="is2grid-cpu"))
    monkeypatch.setenv("IS2GRID_NUM_THREADS", "2")
    rng = np.random.default_rng(0)
    lon, lat = rng.uniform(-180, 180, 300_000), rng.uniform(60, 90, 300_000)
    one = to_xy(lon, lat, "EPSG:6931", threads=1)
    to_xy(lon, lat, "EPSG:6931", threads=2)
    started: list[str] = []
    start = threading.Thread.start

    def spying(self):
        started.append(self.name)
        return start(self)

    monkeypatch.setattr(threading.Thread, "start", spying)
    for _ in range(3):
        two = to_xy(lon, lat, "EPSG:6931", threads=2)
        np.testing.assert_array_equal(two[0], one[0])
        np.testing.assert_array_equal(two[1], one[1])
    assert started == []
