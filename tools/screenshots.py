"""The README's pictures, taken by the test suite's browser (chromium, network blocked).

Run: ``python tools/screenshots.py`` -> docs/images/explorer.png and docs/images/ross_timeseries.png,
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
    out = ROOT / "docs" / "images"
    out.mkdir(parents=True, exist_ok=True)
    paths = tutorial.sample_month()
    weekly = workflow.grid_granules(paths, res=12500, freq="7D", progress=False)
    daily = workflow.grid_granules(paths, res=12500, freq="1D", progress=False)
    folder = Path(tempfile.mkdtemp())
    weekly.is2grid.explore("mean_fb").save(folder / "explorer.html")
    explore.timeseries_plot(timeseries.region_timeseries(daily, "ross"), width=820).save(folder / "ross.html")
    with chromium() as browser:
        page = Page(browser, (folder / "explorer.html").as_uri(), width=760, height=900)
        box = page.canvas_box()
        page.page.locator(".noUi-handle").first.focus()
        page.page.keyboard.press("ArrowRight")
        page.page.wait_for_timeout(400)
        pixels = page.pixels(box)
        ys, xs = colourful(pixels)[:, : pixels.shape[1] - 150].nonzero()  # not the colour bar
        page.page.mouse.move(box["x"] + float(xs[len(xs) // 3]), box["y"] + float(ys[len(ys) // 3]))
        page.page.wait_for_timeout(400)
        page.page.screenshot(path=str(out / "explorer.png"), clip={"x": 0, "y": 0, "width": 760, "height": 880})
        page = Page(browser, (folder / "ross.html").as_uri(), width=900, height=360)
        page.page.screenshot(path=str(out / "ross_timeseries.png"), clip={"x": 0, "y": 0, "width": 900, "height": 350})
    print(f"wrote {out / 'explorer.png'} and {out / 'ross_timeseries.png'}")


if __name__ == "__main__":
    main()
