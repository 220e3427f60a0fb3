"""A real browser for the tests: Debian's chromium driven by Playwright, with the network blocked.

Pages may load ``file://`` URLs and the loopback servers the tests start, nothing else: a page that
needs a CDN fails here as it would offline.
"""

from __future__ import annotations

import io
import os
import shutil
from contextlib import contextmanager

import numpy as np
import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
#: CI sets this: there the browser tests must run, never skip
REQUIRED = os.environ.get("IS2GRID_BROWSER_TESTS") == "required"


@contextmanager
def chromium():
    if CHROMIUM is None:
        if REQUIRED:
            pytest.fail("IS2GRID_BROWSER_TESTS=required but no chromium: apt-get install -y chromium")
        pytest.skip("no chromium on this machine (apt-get install -y chromium); CI installs it and runs these tests")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            yield browser
        finally:
            browser.close()


def _local(url: str) -> bool:
    return url.startswith(("file:", "data:", "blob:", "about:")) or url.startswith(
        ("http://127.0.0.1", "ws://127.0.0.1")
    )


class Page:
    """A page with the network blocked, its console errors and failed requests recorded."""

    def __init__(self, browser, url: str, width: int = 1000, height: int = 980, wait_for: str = "canvas"):
        self.page = browser.new_page(viewport={"width": width, "height": height})
        self.errors: list[str] = []
        self.blocked: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("requestfailed", lambda r: self.errors.append(f"request failed: {r.url[:120]}"))
        self.page.route("**/*", self._route)
        self.page.goto(url)
        self.page.wait_for_selector(wait_for, timeout=30_000)
        self.page.wait_for_timeout(800)

    def _route(self, route):
        if _local(route.request.url):
            route.continue_()
        else:
            self.blocked.append(route.request.url)
            route.abort()

    def canvas_box(self, frame=None) -> dict:
        """The largest canvas (the map) of the page or of an iframe."""
        scope = frame or self.page
        boxes = [c.bounding_box() for c in scope.locator("canvas").all()]
        boxes = [b for b in boxes if b and b["width"] > 100]
        return max(boxes, key=lambda b: b["width"] * b["height"])

    def pixels(self, box: dict) -> np.ndarray:
        from PIL import Image

        png = self.page.screenshot(clip=box)
        return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(np.int16)

    def tooltip(self, frame=None) -> str:
        """The text of the visible hover tooltips (Bokeh draws them inside shadow roots)."""
        scope = frame or self.page
        return scope.evaluate(
            """() => {
                const texts = [];
                const walk = (root) => {
                    for (const el of root.querySelectorAll("*")) {
                        if (el.classList && el.classList.contains("bk-Tooltip") && el.shadowRoot) {
                            const content = el.shadowRoot.querySelector(".bk-tooltip-content");
                            if (content) texts.push(content.innerText);
                        }
                        if (el.shadowRoot) walk(el.shadowRoot);
                    }
                };
                walk(document);
                return texts.join(" ");
            }"""
        )

    def screenshot(self, path) -> None:
        self.page.screenshot(path=str(path), full_page=False)


def colourful(pixels: np.ndarray) -> np.ndarray:
    """Pixels of the colour map (saturated), not the grey/white background, lines and labels."""
    return (pixels.max(axis=2) - pixels.min(axis=2)) > 60
