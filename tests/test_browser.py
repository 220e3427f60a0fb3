"""The explorer in a real browser (chromium, network blocked): saved page, live server, notebook export."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import is2grid
from is2grid import workflow
from is2grid.viz import explore
from tests.browser import Page, chromium, colourful


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


@pytest.fixture(scope="module")
def month(sample_month):
    return sample_month


@pytest.fixture(scope="module")
def weekly_nc(month, tmp_path_factory):
    path = tmp_path_factory.mktemp("nc") / "weekly.nc"
    workflow.write_netcdf(workflow.grid_granules(month, res=25000, freq="7D", progress=False), path)
    return path


def step_slider(page: Page, frame=None) -> None:
    scope = frame or page.page
    scope.locator(".noUi-handle").first.focus()
    page.page.keyboard.press("ArrowRight")
    page.page.wait_for_timeout(400)


def on_map(pixels: np.ndarray) -> np.ndarray:
    """Coloured pixels of the map's data: not the colour bar (a solid band of coloured columns)."""
    mask = colourful(pixels)
    mask[:, mask.mean(axis=0) > 0.3] = False
    return mask


def hover_somewhere(page: Page, box: dict, pixels: np.ndarray, needs: str = "latitude") -> str:
    """Move the pointer over coloured pixels of the map until a tooltip naming ``needs`` shows (cells may be 1 px)."""
    for attempt in range(2):
        ys, xs = np.nonzero(on_map(pixels))
        for i in np.linspace(0, len(xs) - 1, 40).astype(int):
            page.page.mouse.move(box["x"] + float(xs[i]) + 0.5, box["y"] + float(ys[i]) + 0.5)
            page.page.wait_for_timeout(150)
            tooltip = page.tooltip()
            if needs in tooltip:
                return tooltip
        if attempt == 0:  # cells of one pixel: zoom in on the data, then look again
            page.page.mouse.move(box["x"] + float(xs[len(xs) // 2]), box["y"] + float(ys[len(ys) // 2]))
            for _ in range(3):
                page.page.mouse.wheel(0, -150)
                page.page.wait_for_timeout(300)
            page.page.wait_for_timeout(800)
            pixels = page.pixels(box)
    raise AssertionError(f"no tooltip with {needs!r} over the map")


def check_map_and_slider(page: Page, shots: Path | None = None) -> dict:
    """Non-blank map; the slider changes the map's pixels (not only the label); hover names the statistic, lat/lon."""
    box = page.canvas_box()
    before = page.pixels(box)
    assert colourful(before).sum() > 200, "the map shows data"
    assert len(np.unique(before.reshape(-1, 3), axis=0)) > 30
    if shots is not None:
        page.screenshot(shots / "explorer.png")
    label = page.page.get_by_text(re.compile("time bin:")).first.inner_text()
    start = time.perf_counter()
    step_slider(page)
    after = page.pixels(box)
    step = time.perf_counter() - start
    assert page.page.get_by_text(re.compile("time bin:")).first.inner_text() != label
    changed = np.abs(after - before).sum(axis=2) > 30
    assert changed.sum() > 200, "moving the slider changes the map, not only its label"
    tooltip = hover_somewhere(page, box, after)
    assert "length-weighted mean sea ice freeboard" in tooltip and "n_segments" in tooltip, tooltip
    n = int(re.search(r"n_segments:\s*(\d+)", tooltip).group(1))
    lat = float(re.search(r"latitude:\s*(-?[\d.]+)", tooltip).group(1))
    lon = float(re.search(r"longitude:\s*(-?[\d.]+)", tooltip).group(1))
    assert -90 <= lat <= -50 or 50 <= lat <= 90, tooltip
    assert n > 0, tooltip
    assert not page.errors and not page.blocked, (page.errors, page.blocked)
    return {"slider_step_s": step, "lat": lat, "lon": lon, "n_segments": n}


def test_saved_page_renders_offline_and_its_slider_moves_the_map(browser, weekly_nc, tmp_path):
    page_path = tmp_path / "map.html"
    view = xr.open_dataset(weekly_nc).is2grid.explore()
    explore.save(view, page_path)
    page = Page(browser, page_path.as_uri())
    hovered = check_map_and_slider(page, tmp_path)
    assert (tmp_path / "explorer.png").stat().st_size > 20_000
    # the hover names the centre of the cell it shows: that cell, found again by its lat/lon, holds the same count
    gridded = xr.open_dataset(weekly_nc)
    assert view.is2grid["page_factor"] == 1
    cell = gridded.isel(time=1).is2grid.sel_lonlat(hovered["lon"], hovered["lat"])
    assert int(cell.n_segments) == hovered["n_segments"]
    centre = gridded.is2grid.latlon().sel(x=float(cell.x), y=float(cell.y))
    assert abs(float(centre.lat) - hovered["lat"]) < 1e-4 and abs(float(centre.lon) - hovered["lon"]) < 1e-4


def test_statistic_selector_changes_colour_bar_and_map(browser, weekly_nc, tmp_path):
    page_path = tmp_path / "map.html"
    explore.save(xr.open_dataset(weekly_nc).is2grid.explore(), page_path)
    page = Page(browser, page_path.as_uri())
    box = page.canvas_box()
    before = page.pixels(box)
    page.page.locator("select").first.select_option(label="n_segments")
    page.page.wait_for_timeout(400)
    assert np.abs(page.pixels(box) - before).sum(axis=2).astype(bool).sum() > 200
    assert not page.errors


def test_live_server_from_the_command_line(browser, weekly_nc):
    child = subprocess.Popen(
        [sys.executable, "-m", "is2grid.cli", "explore", str(weekly_nc)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = child.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+/", line)
        assert url, (line, child.stderr.read() if child.poll() is not None else "")
        start = time.perf_counter()
        page = Page(browser, url.group(0))
        first_map = time.perf_counter() - start
        timings = check_map_and_slider(page)
        print(f"live server: first map {first_map:.2f} s, slider step {timings['slider_step_s'] * 1000:.0f} ms")
    finally:
        child.terminate()
        child.wait(timeout=30)


def wait_for_server(url: str, seconds: float = 60) -> None:
    """Until the server answers (a loaded machine may take a while to start Panel's)."""
    import urllib.request

    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=10):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def zoom_in(page: Page, box: dict, at: tuple[float, float], steps: int = 2) -> None:
    page.page.mouse.move(box["x"] + box["width"] * at[0], box["y"] + box["height"] * at[1])
    for _ in range(steps):
        page.page.mouse.wheel(0, -150)
        page.page.wait_for_timeout(400)
    page.page.wait_for_timeout(1500)


def test_zoom_refines_the_cells_in_a_live_server(browser, weekly_nc):
    """A page too small for every cell combines them; zooming in redraws the cells in view as gridded."""
    view = xr.open_dataset(weekly_nc).is2grid.explore(max_bytes=1.5e5, width=300)
    k = view.is2grid["page_factor"]
    assert k > 1
    served = explore.serve(view)
    try:
        wait_for_server(served.url)
        page = Page(browser, served.url)
        page.page.wait_for_timeout(1500)
        assert 1 < view.is2grid["drawn"]["factor"] <= k, view.is2grid["drawn"]
        box = page.canvas_box()
        before = page.pixels(box)
        centre = (0.3, 0.45)  # inside the map frame (the canvas also holds the colour bar)
        factors = [view.is2grid["drawn"]["factor"]]
        while factors[-1] > 1 and len(factors) < 8:
            zoom_in(page, box, centre, steps=1)
            factors.append(view.is2grid["drawn"]["factor"])
        assert factors[-1] == 1 and view.is2grid["drawn"]["cells"] > 0, (factors, view.is2grid["drawn"])
        after = page.pixels(box)
        assert colourful(after).sum() > 100 and np.abs(after - before).sum(axis=2).astype(bool).sum() > 500
        assert not page.errors and not page.blocked, (page.errors, page.blocked)
    finally:
        served.stop()


def test_a_month_at_6km_saved_at_the_resolution_gridded(browser, month, tmp_path):
    daily = workflow.grid_granules(month, res=6250, freq="1D", progress=False)
    view = daily.is2grid.explore()
    assert view.is2grid["page_factor"] == 1, "every cell of every day travels with the page"
    page_path = Path(explore.save(view, tmp_path / "month.html"))
    written = page_path.stat().st_size
    assert written <= 25e6
    bare = Path(explore.save(daily.isel(time=[0]).is2grid.explore(), tmp_path / "one.html")).stat().st_size
    # the budget counts what is written: the month's cells took no more than the estimate
    assert written - bare <= view.is2grid["page_cell_bytes"] * 1.1, (written, bare, view.is2grid["page_cell_bytes"])
    page = Page(browser, page_path.as_uri())
    # every bin carries all its cells: the rectangles in the page, bin after bin, are the cells with a mean
    expected = np.isfinite(daily.mean_fb.values).sum(axis=(1, 2))
    page.page.locator(".noUi-handle").first.focus()
    drawn = []
    for _ in range(daily.sizes["time"]):
        drawn.append(page.page.evaluate(RECTANGLES_DRAWN))
        page.page.keyboard.press("ArrowRight")
        page.page.wait_for_timeout(150)
    np.testing.assert_array_equal(drawn, expected)
    page.page.reload()
    page.page.wait_for_selector("canvas", timeout=30_000)
    page.page.wait_for_timeout(800)
    check_map_and_slider(page)


#: the number of cells (rectangles) the map's data source holds, read from Bokeh in the page
RECTANGLES_DRAWN = """() => {
    for (const doc of Bokeh.documents)
        for (const model of doc._all_models.values())
            if (model.type === "ColumnDataSource" && model.data.x0) return model.data.x0.length;
    return -1;
}"""


def test_segments_rasterized_and_reaggregated_on_zoom_in_a_live_server(browser, month):
    view = is2grid.open_granules(month[:6]).is2grid.explore()
    served = explore.serve(view)
    try:
        wait_for_server(served.url)
        page = Page(browser, served.url)
        received: list[int] = []
        page.page.on("websocket", lambda ws: ws.on("framereceived", lambda payload: received.append(1)))
        box = page.canvas_box()
        before = page.pixels(box)
        assert colourful(before).sum() > 100, "segments are drawn"
        tooltip = hover_somewhere(page, box, before, needs="beam")
        assert "latitude" in tooltip and "longitude" in tooltip and "time" in tooltip, tooltip
        # a fresh websocket listener only sees frames sent after this point
        page.page.reload()
        page.page.wait_for_selector("canvas", timeout=30_000)
        page.page.wait_for_timeout(1500)
        box = page.canvas_box()
        sent_before = len(received)
        zoom_in(page, box, (0.3, 0.3), steps=1)
        assert len(received) > sent_before, "zooming asks the server for a new aggregation"
        assert colourful(page.pixels(box)).sum() > 100
        assert not page.errors and not page.blocked, (page.errors, page.blocked)
    finally:
        served.stop()


def test_exported_quickstart_notebook_has_a_working_slider(browser, tmp_path, monkeypatch, sample_month):
    """The quickstart notebook, executed by a Jupyter kernel and exported to HTML, works offline.

    It runs on the first 8 days of the session's sample month (written once for the suite): every cell runs as
    a user's would, with 8 time bins to embed instead of 30.
    """
    import nbformat
    from nbclient import NotebookClient
    from nbconvert import HTMLExporter

    source = Path(__file__).parents[1] / "notebooks" / "quickstart.ipynb"
    notebook = nbformat.read(source, as_version=4)
    days = [str(p) for p in sample_month[:8]]
    setup = nbformat.v4.new_code_cell(
        "from pathlib import Path\nfrom is2grid import tutorial\n"
        f"tutorial.sample_month = lambda *args, **kwargs: [Path(p) for p in {days!r}]"
    )
    notebook.cells.insert(0, setup)
    NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    said = [o.get("text", "") for c in notebook.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [t for t in said if "W-1005" in t or "WARNING:bokeh" in t], said
    body, _ = HTMLExporter(template_name="lab").from_notebook_node(notebook)
    exported = tmp_path / "quickstart.html"
    exported.write_text(body, encoding="utf-8")
    page = Page(browser, exported.as_uri(), height=1400, wait_for="iframe")
    explorer = page.page.frame_locator("iframe").first
    explorer.locator("canvas").first.wait_for(timeout=30_000)
    explorer.locator(".noUi-handle").first.scroll_into_view_if_needed()
    page.page.wait_for_timeout(1000)
    canvases = [c.bounding_box() for c in explorer.locator("canvas").all()]
    box = max((b for b in canvases if b), key=lambda b: b["width"] * b["height"])
    before = page.pixels(box)
    explorer.locator(".noUi-handle").first.focus()
    page.page.keyboard.press("ArrowRight")
    page.page.wait_for_timeout(500)
    assert np.abs(page.pixels(box) - before).sum(axis=2).astype(bool).sum() > 100, "the slider moves the map"
    # the notebook template asks CDNs for MathJax and require.js, and hvplot's notebook extension (the output of
    # `import hvplot.xarray`) for HoloViz's JavaScript: blocked here, as offline. The views must not fail.
    cdn = ("request failed", "Failed to load resource", "failed to load https://cdn.")
    ours = [e for e in page.errors if not e.startswith(cdn) and "Failed to load resource" not in e]
    assert not ours, ours
