"""The README's pictures, taken by the test suite's browser (chromium, network blocked).

Run: ``python tools/screenshots.py`` -> docs/images/explorer.png, hvplot_geo.png and ross_timeseries.png,
from the bundled synthetic month (the same data as ``make demo``).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from is2grid import tutorial, workflow  # noqa: E402
from is2grid.grid import timeseries  # noqa: E402
from is2grid.viz import explore  # noqa: E402
from tests.browser import Page, chromium, colourful  # noqa: E402


def main() -> None:
    import hvplot.xarray  # noqa: F401

    out = ROOT / "docs" / "images"
    out.mkdir(parents=True, exist_ok=True)
    paths = tutorial.sample_month()
    daily = workflow.grid_granules(paths, res=6250, freq="1D", progress=False)
    weekly = workflow.grid_granules(paths, res=12500, freq="7D", progress=False)
    folder = Path(tempfile.mkdtemp())
    explore.save(daily.is2grid.explore("mean_fb"), folder / "explorer.html")
    explore.save(explore.timeseries_plot(timeseries.region_timeseries(daily, "ross"), width=820), folder / "ross.html")
    geo = weekly.mean_fb.hvplot.image(x="x", y="y", groupby="time", geo=True, coastline=True, cmap="viridis",
                                      frame_width=560, title="weekly mean freeboard, hvplot geo=True")  # fmt: skip
    explore.save(geo, folder / "hvplot.html")
    with chromium() as browser:
        page = Page(browser, (folder / "explorer.html").as_uri(), width=940, height=980)
        box = page.canvas_box()
        page.page.locator(".noUi-handle").first.focus()
        page.page.keyboard.press("ArrowRight")
        page.page.wait_for_timeout(400)
        # zoom on the Ross Sea side of the map, where the cells (6.25 km, as gridded) are seen one by one
        page.page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.62)
        for _ in range(3):
            page.page.mouse.wheel(0, -150)
            page.page.wait_for_timeout(300)
        pixels = page.pixels(box)
        ys, xs = colourful(pixels)[:, : pixels.shape[1] - 200].nonzero()  # not the colour bar
        for i in range(0, len(xs), max(1, len(xs) // 40)):
            page.page.mouse.move(box["x"] + float(xs[i]) + 0.5, box["y"] + float(ys[i]) + 0.5)
            page.page.wait_for_timeout(150)
            if "latitude" in page.tooltip():
                break
        page.page.screenshot(path=str(out / "explorer.png"), clip={"x": 0, "y": 0, "width": 940, "height": 960})
        page = Page(browser, (folder / "hvplot.html").as_uri(), width=900, height=760)
        page.page.screenshot(path=str(out / "hvplot_geo.png"), clip={"x": 0, "y": 0, "width": 900, "height": 720})
        page = Page(browser, (folder / "ross.html").as_uri(), width=900, height=360)
        page.page.screenshot(path=str(out / "ross_timeseries.png"), clip={"x": 0, "y": 0, "width": 900, "height": 350})
    print(f"wrote {out / 'explorer.png'}, {out / 'hvplot_geo.png'} and {out / 'ross_timeseries.png'}")


if __name__ == "__main__":
    main()
