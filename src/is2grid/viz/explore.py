"""Interactive maps in the browser, built on HoloViews: gridded results, segments, region series.

Every view is a HoloViews object: overlay it (``*``), lay it out (``+``), give it ``.opts``, serve it
with Panel or save it. Maps are drawn in the grid's own projection (EASE-Grid 2.0 LAEA or NSIDC
polar stereographic) in metres, with the bundled Natural Earth coastlines and a graticule, so nothing
is downloaded.

- :func:`grid_explorer`: a gridded result as its occupied cells (:mod:`is2grid.viz.cells`), with a
  time slider and a statistic selector (HoloViews widgets). In a live server the cells in view are
  drawn at the resolution gridded once zoomed in, combined k x k exactly (from their sums) to fit
  the pixels when zoomed out, and refined at every zoom. A saved page carries every bin's cells at
  the resolution gridded, combined only if they would exceed ``max_bytes``, which the title says.
  Hover names the statistic with its units, ``n_segments``, and the cell centre's latitude and
  longitude (computed with PROJ).
- :func:`segments_explorer`: millions of segments rasterized with datashader, re-aggregated on zoom,
  with hover on the segment under the pointer (latitude, longitude, value, beam, time).
- :func:`timeseries_plot`: a region series with its spread.

:func:`save` writes a view as one HTML file that opens with no network; :func:`serve` serves it.
"""

from __future__ import annotations

import functools
import math
import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from is2grid._extras import need
from is2grid.errors import GridError
from is2grid.products.base import ROLES
from is2grid.viz.cells import Cells, occupied

__all__ = [
    "Embedded",
    "Served",
    "embedded",
    "grid_explorer",
    "html",
    "save",
    "segments_explorer",
    "serve",
    "timeseries_plot",
]

#: bytes a saved page spends on one cell of one frame: four float32 corners, the value, n_segments, lat and lon,
#: base64-encoded (4/3); checked against written pages in the tests
PAGE_BYTES_PER_CELL = 8 * 4 * 4 / 3
#: after a zoom or pan, how long Bokeh waits before telling the server the new ranges (Bokeh's default: 500 ms)
SETTLE_MS = 100


# -- gridded results ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _GridFrames:
    """What the grid explorer draws from: each bin's occupied cells and the grid's geometry."""

    frames: list[Cells]
    x0: float  # the outer edge of column 0
    y0: float  # the outer edge of row 0
    dx: float
    dy: float
    crs: Any

    def rectangles(self, cells: Cells, columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The cells' corners (float32, exact for EASE-Grid 2.0 edges) and centres' lat/lon, with ``columns``."""
        k = cells.factor
        xa = self.x0 + cells.col * (k * self.dx)
        ya = self.y0 + cells.row * (k * self.dy)
        xb, yb = xa + k * self.dx, ya + k * self.dy
        lon, lat = _to_lonlat(self.crs).transform((xa + xb) / 2, (ya + yb) / 2)
        corners = {"x0": np.minimum(xa, xb), "y0": np.minimum(ya, yb), "x1": np.maximum(xa, xb),
                   "y1": np.maximum(ya, yb)}  # fmt: skip
        out = {name: v.astype(np.float32) for name, v in corners.items()}
        out.update(columns)
        out["latitude"], out["longitude"] = lat.astype(np.float32), lon.astype(np.float32)
        return out

    def index_range(self, low: float, high: float, axis: str, factor: int) -> tuple[float, float]:
        """Indices of the ``factor``-combined cells that a coordinate range touches, on ``axis`` "x" or "y"."""
        origin, step = (self.x0, self.dx) if axis == "x" else (self.y0, self.dy)
        a, b = (low - origin) / (step * factor), (high - origin) / (step * factor)
        return math.floor(min(a, b)), math.floor(max(a, b))


def grid_explorer(
    gridded: xr.Dataset,
    var: str | None = None,
    *,
    width: int = 720,
    max_bytes: float = 25e6,
    cmap: str = "viridis",
    output_backend: str = "canvas",
):
    """A map of a gridded result: time slider, statistic selector, colour bar, hover; refined on zoom.

    Parameters
    ----------
    gridded : xarray.Dataset
        A result of ``to_ease2``/``to_grid``/``grid_granules``, or a NetCDF file or Zarr store of one
        opened with xarray (lazy is fine: each time bin is read once).
    var : str, optional
        The statistic shown first (``mean_fb``, ``std_fb``, ``n_segments``, ``mean_seg_length``, or the
        ``mean_<stem>``... of another gridded variable); default the mean.
    width : int
        Map width in pixels. A live view combines cells only when there are more across than pixels.
    max_bytes : float
        What the cells of all bins and statistics may take in a saved page (:func:`save`); above it,
        cells are combined k x k (exactly, from their sums) and the title says so.
    cmap : str
        A colour map name.
    output_backend : {"canvas", "webgl"}
        How the browser draws the map. A 2D canvas draws a few thousand cells in about 10 ms on any
        machine; WebGL is faster with a GPU and many cells in view, but takes 100-300 ms a frame without
        one (a browser in a VM or on a remote desktop).

    Returns
    -------
    holoviews.DynamicMap
        Key dimensions ``time`` and ``statistic`` (the widgets) and a ``RangeXY`` stream. Its
        ``is2grid`` attribute holds what was drawn (``page_factor``, ``cells`` per bin, ``resolution_m``,
        ``page_cell_bytes``), the ``zoom`` stream and what was ``drawn`` last (``factor``, ``cells``).

    Examples
    --------
    >>> import tempfile
    >>> from is2grid import tutorial
    >>> ds = xr.open_dataset(tutorial.write_granule(tempfile.mkdtemp(), n_segments=2000), engine="atl10")
    >>> view = grid_explorer(ds.is2grid.to_ease2(res=25000))
    >>> [d.name for d in view.kdims], view.is2grid["page_factor"]
    (['time', 'statistic'], 1)
    """
    need("viz", "the explorer", ("bokeh", "holoviews", "panel"))
    import holoviews as hv
    from pyproj import CRS

    from is2grid.grid.gridding import statistic_names

    roles = statistic_names(gridded)
    stats = [roles[role] for role in ROLES]
    var = var or roles["mean"]
    missing = [n for n in stats if n not in gridded.variables]
    if missing or "crs" not in gridded.variables:
        raise GridError(f"explore() needs a gridded Dataset (from to_ease2/to_grid), which lacks {missing or ['crs']}.")
    if var not in stats:
        raise GridError(f"var={var!r}: choose one of {', '.join(stats)}.")
    if "time" not in gridded.dims:
        gridded = gridded.expand_dims("time")
    ny, nx, nt = gridded.sizes["y"], gridded.sizes["x"], gridded.sizes["time"]
    if not (ny and nx and nt):
        raise GridError("explore(): the result is empty (no cells or no time bins); nothing to draw.")
    xs, ys = np.asarray(gridded.x.values, dtype=np.float64), np.asarray(gridded.y.values, dtype=np.float64)
    res = float(gridded.attrs.get("grid_resolution_m", abs(xs[1] - xs[0]) if nx > 1 else 1.0))
    dx = float(xs[1] - xs[0]) if nx > 1 else res
    dy = float(ys[1] - ys[0]) if ny > 1 else -res
    geometry = _GridFrames(
        [occupied(gridded.isel(time=t), stats) for t in range(nt)],
        xs[0] - dx / 2, ys[0] - dy / 2, dx, dy, CRS.from_cf(dict(gridded["crs"].attrs)),
    )  # fmt: skip
    frames = geometry.frames
    if not sum(len(f) for f in frames):
        raise GridError("explore(): no cell holds segments; nothing to draw.")
    native = [f.statistics() for f in frames]
    by_role = dict(zip(stats, ("count", "mean_length", "mean", "std"), strict=True))
    limits = {name: _robust_limits([s[by_role[name]] for s in native]) for name in stats}
    page_factor = 1
    while sum(len(f.coarsened(page_factor)) for f in frames) * len(stats) * PAGE_BYTES_PER_CELL > max_bytes:
        page_factor += 1
    extent = _data_extent(geometry)
    labels = _time_labels(gridded)
    starts = _time_starts(gridded)
    names = {n: str(gridded[n].attrs.get("long_name", n)) for n in stats}
    units = {n: str(gridded[n].attrs.get("units", "1")) for n in stats}
    grid_name = str(gridded.attrs.get("grid", ""))
    count = stats[0]

    drawn: dict[str, Any] = {}

    def draw(time, statistic: str, x_range=None, y_range=None):
        t = starts.index(time)
        if x_range is None or y_range is None:
            cells = frames[t].coarsened(page_factor)
        else:
            # cells as small as the pixels, never coarser than the page's: zooming in refines to the grid's own
            across = max(abs(x_range[1] - x_range[0]) / res, abs(y_range[1] - y_range[0]) / res)
            factor = min(page_factor, max(1, math.ceil(across / width)))
            rows = geometry.index_range(y_range[0], y_range[1], "y", factor)
            cols = geometry.index_range(x_range[0], x_range[1], "x", factor)
            cells = frames[t].coarsened(factor).within(rows, cols)
        drawn.update(factor=cells.factor, cells=len(cells), time=labels[t], statistic=statistic)
        values = cells.statistics()
        shown = values[by_role[statistic]]
        keep = np.isfinite(shown) & (values["count"] > 0)
        kept = cells.subset(keep)
        data = geometry.rectangles(kept, {statistic: shown[keep].astype(np.float32)})
        if statistic != count:
            data[count] = values["count"][keep].astype(np.int32)
        value = hv.Dimension(statistic, label=names[statistic], unit=units[statistic])
        vdims = [value] + ([count] if statistic != count else []) + ["latitude", "longitude"]
        shown_res = res * cells.factor / 1000
        combined = f", cells combined {cells.factor} x {cells.factor}" if cells.factor > 1 else ""
        tooltips = [(names[statistic], f"@{{{statistic}}}{{0.000}}")]
        if statistic != count:
            tooltips.append(("n_segments", f"@{{{count}}}"))
        tooltips += [("cell centre latitude", "@{latitude}{0.0000}°"),
                     ("cell centre longitude", "@{longitude}{0.0000}°")]  # fmt: skip
        return hv.Rectangles(data, kdims=["x0", "y0", "x1", "y1"], vdims=vdims).opts(
            color=statistic, cmap=cmap, clim=limits[statistic], colorbar=True, line_alpha=0,
            clabel=f"{names[statistic]} ({units[statistic]})", tools=["hover"], hover_tooltips=tooltips,
            # the bin is named by the slider: a saved page does not carry a title per frame
            title=f"{grid_name} at {shown_res:g} km{combined}",
        )  # fmt: skip

    time_dim = hv.Dimension("time", label="time bin", values=starts, default=starts[0],
                            value_format=lambda start: labels[starts.index(start)])  # fmt: skip
    stat_dim = hv.Dimension("statistic", values=stats, default=var)
    zoom = _view_range_class()()

    def on_map(streams: list):
        cells_map = hv.DynamicMap(draw, kdims=[time_dim, stat_dim], streams=streams)
        return _on_map(cells_map, dict(gridded["crs"].attrs), extent, width, output_backend)

    view = on_map([zoom])
    # a saved page: every occupied cell of every bin, with no range stream (a static render would hand the
    # stream the first frame's ranges, and cells outside them would be left out)
    static = functools.partial(on_map, [])

    view.is2grid = {
        "page_factor": page_factor,
        "resolution_m": res,
        "cells": [len(f) for f in frames],
        "page_cell_bytes": sum(len(f.coarsened(page_factor)) for f in frames) * len(stats) * PAGE_BYTES_PER_CELL,
        "times": labels,
        "starts": starts,
        "zoom": zoom,
        "drawn": drawn,
        "static": static,
    }
    return view


@functools.cache
def _view_range_class():
    """A RangeXY stream answered as soon as Bokeh reports the settled ranges.

    HoloViews waits for 100 ms of quiet before it answers a RangeXY stream; the map's figure already
    reports ranges only once a zoom or pan has settled for ``SETTLE_MS``, so the server's wait would
    only add to the time until the refined cells are drawn. Registered with HoloViews under its own
    class: other plots keep their streams as they are.
    """
    import holoviews as hv
    from holoviews.plotting.bokeh.callbacks import RangeXYCallback

    class ViewRange(hv.streams.RangeXY):
        """The x and y ranges of the map, once a zoom or pan has settled."""

    class ViewRangeCallback(RangeXYCallback):
        debounce = None

    hv.streams.Stream._callbacks["bokeh"][ViewRange] = ViewRangeCallback
    return ViewRange


def _settled(plot, element, output_backend: str = "canvas") -> None:
    """Bokeh hook: the figure reports its ranges ``SETTLE_MS`` after a zoom or pan, drawn on ``output_backend``."""
    figure = plot.state
    figure.output_backend = output_backend
    figure.lod_interval = SETTLE_MS
    figure.lod_timeout = SETTLE_MS


@functools.lru_cache(maxsize=8)
def _to_lonlat(crs):
    """A pyproj transformer from the grid to longitude/latitude (made once per CRS: each takes ~20 ms)."""
    from pyproj import Transformer

    return Transformer.from_crs(crs, "EPSG:4326", always_xy=True)


def _data_extent(geometry: _GridFrames) -> tuple[float, float, float, float]:
    """x0, x1, y0, y1 around every occupied cell of every bin, with a margin of 5 %."""
    rows = np.concatenate([f.row for f in geometry.frames])
    cols = np.concatenate([f.col for f in geometry.frames])
    xa, xb = (geometry.x0 + c * geometry.dx for c in (cols.min(), cols.max() + 1))
    ya, yb = (geometry.y0 + r * geometry.dy for r in (rows.min(), rows.max() + 1))
    x0, x1, y0, y1 = min(xa, xb), max(xa, xb), min(ya, yb), max(ya, yb)
    pad = 0.05 * max(x1 - x0, y1 - y0)
    return x0 - pad, x1 + pad, y0 - pad, y1 + pad


#: the map frame's height over its width stays within these: one track's extent is a strip
FRAME_ASPECT = (0.6, 1.25)


def _framed(extent: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    """``extent`` widened about its centre so that its height over width is within :data:`FRAME_ASPECT`.

    The map keeps a data aspect of 1, so one granule's track (a strip 8,000 km long and a few hundred wide)
    would otherwise make a figure thousands of pixels tall, and every re-aggregation an image as large.

    >>> _framed((0.0, 100.0, 0.0, 1000.0))
    (-350.0, 450.0, 0.0, 1000.0)
    """
    x0, x1, y0, y1 = extent
    low, high = FRAME_ASPECT
    width, height = x1 - x0, y1 - y0
    if height > high * width:
        half, middle = height / high / 2, (x0 + x1) / 2
        return middle - half, middle + half, y0, y1
    if height < low * width:
        half, middle = low * width / 2, (y0 + y1) / 2
        return x0, x1, middle - half, middle + half
    return extent


def _on_map(layer, crs_attrs: dict[str, Any], extent, width: int, output_backend: str = "canvas"):
    """``layer`` under the graticule and coastlines, framed on ``extent``, axes in km."""
    import holoviews as hv
    from bokeh.models import CustomJSTickFormatter

    if output_backend not in ("canvas", "webgl"):
        raise GridError(f"output_backend={output_backend!r}: choose 'canvas' (the default) or 'webgl'.")
    _bokeh_backend()
    extent = _framed(extent)
    lines = _outline_lines(crs_attrs, extent)

    def path(part):
        # one array, lines broken by NaN rows: HoloViews ranges and updates one path per frame, not hundreds
        pairs = zip(lines[part]["xs"], lines[part]["ys"], strict=True)
        pieces = [np.column_stack([[*a, np.nan], [*b, np.nan]]) for a, b in pairs]
        return [np.concatenate(pieces)] if pieces else []

    graticule = hv.Path(path("graticule"), group="Graticule").opts(color="#9aa5b1", line_width=0.6,
                                                                  line_dash="dotted")  # fmt: skip
    coast = hv.Path(path("coast"), group="Coastline").opts(color="#303030", line_width=1.0)
    kilometres = CustomJSTickFormatter(code="return (tick / 1000).toLocaleString('en-US')")
    x0, x1, y0, y1 = extent
    return (layer * graticule * coast).opts(
        hv.opts.Overlay(
            # width and height of the whole figure (a frame size alone makes Bokeh warn, W-1005): the map frame
            # is ``width`` wide, the colour bar and axes take about 180 pixels more
            width=width + 180, height=int(width * (y1 - y0) / (x1 - x0)) + 70, data_aspect=1, xlim=(x0, x1),
            ylim=(y0, y1), xlabel="x (km)", ylabel="y (km)",
            xformatter=kilometres, yformatter=kilometres, bgcolor="#f4f6f8", active_tools=["wheel_zoom"],
            hooks=[functools.partial(_settled, output_backend=output_backend)],
        )
    )  # fmt: skip


# -- pages and servers ---------------------------------------------------------------------------------------


def save(view, path: str | os.PathLike, title: str = "is2grid") -> str:
    """Write a view as one HTML file that opens with no network (JavaScript and CSS inlined).

    The widgets' frames are embedded (every time bin and statistic); the file is written to a
    temporary name, then renamed.
    """
    import panel as pn
    from bokeh.document import Document
    from bokeh.resources import INLINE
    from panel.io.resources import set_resource_mode
    from panel.io.state import set_curdoc

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.stem}.partial-{os.getpid()}.html")
    static = getattr(view, "is2grid", {}).get("static")
    if static is not None:
        view = static()
    # a page of its own document: Bokeh's curdoc() is process-wide, and a live server's session document left
    # on it (Bokeh does not take it off when a callback raises, e.g. as a browser tab closes) would make Panel
    # treat this save as a session update from a foreign thread
    with pn.config.set(inline=True), set_resource_mode("inline"), set_curdoc(Document()):
        # every value of every widget (Panel embeds 3 per widget unless told otherwise)
        _pane(view).save(partial, embed=True, resources=INLINE, title=title, progress=False, max_states=100_000,
                         max_opts=100_000)  # fmt: skip
    page = _offline(partial.read_text(encoding="utf-8"))
    partial.write_text(page, encoding="utf-8")
    os.replace(partial, target)
    return os.fspath(target)


def html(view, title: str = "is2grid") -> str:
    """The page :func:`save` writes, as a string."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        return Path(save(view, Path(folder) / "view.html", title)).read_text(encoding="utf-8")


def embedded(view, height: int = 900, title: str = "is2grid"):
    """The saved page of a view inside the notebook, as a self-contained iframe (no kernel, no network needed).

    Displaying ``view`` itself is live (zoom re-aggregates, widgets call Python) but needs a kernel and
    HoloViews' JavaScript; this copy keeps working in an exported notebook, offline.
    """
    import html as markup

    page = markup.escape(html(view, title), quote=True)
    return Embedded(f'<iframe srcdoc="{page}" style="width:100%;height:{height}px;border:0" '
                    f'title="{markup.escape(title)}"></iframe>')  # fmt: skip


@dataclass(frozen=True)
class Embedded:
    """An offline copy of a view for a notebook: shown as its iframe (``data``)."""

    data: str

    def _repr_html_(self) -> str:
        return self.data


@dataclass
class Served:
    """A running view server: its URL and how to stop it."""

    url: str
    port: int
    thread: Any

    def stop(self) -> None:
        """Stop the server."""
        self.thread.stop()


def serve(view, port: int = 0, *, show: bool = False, title: str = "is2grid") -> Served:
    """Serve a view on http://127.0.0.1:port with Panel, in a background thread; zooming refines it.

    ``port=0`` picks a free port. The server answers pages of its own origin only. Stop it with
    ``served.stop()``.
    """
    import panel as pn

    if port == 0:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
    origins = [f"127.0.0.1:{port}", f"localhost:{port}"]

    def page():
        return _pane(view)

    thread = pn.serve(
        {"/": page}, port=port, address="127.0.0.1", show=show, threaded=True, title=title,
        websocket_origin=origins, start=True, verbose=False,
    )  # fmt: skip
    return Served(f"http://127.0.0.1:{port}/", port, thread)


def _offline(page: str) -> str:
    """A saved page that asks no server for anything: Panel's style sheets inlined, its icons and extensions dropped."""
    import json

    import panel as pn

    dist = Path(pn.__file__).parent / "dist"

    def inlined(match: re.Match) -> str:
        css = (dist / match.group(3)).read_text(encoding="utf-8") if (dist / match.group(3)).exists() else ""
        sheet = {"type": "object", "name": "InlineStyleSheet", "id": match.group(1), "attributes": {"css": css}}
        return json.dumps(sheet, separators=(",", ":"))

    page = re.sub(
        r'\{"type":"object","name":"ImportedStyleSheet","id":"([^"]+)","attributes":\{"url":"(https://cdn\.holoviz\.org/'
        r'panel/[^/]+/dist/)([^"]+)"\}\}',
        inlined,
        page,
    )
    page = re.sub(r'<link rel="(?:icon|apple-touch-icon)"[^>]*>', "", page)
    # HoloViews holds a plot's rendering while it updates it; recorded in the embedded states, a "hold" can end
    # up applied after its release, and the map then keeps the previous bin on screen: the saved states go
    # without them (each state replaces the data whole)
    hold = (
        r'\{\\"kind\\":\\"ModelChanged\\",\\"model\\":\{\\"id\\":\\"[^\\]+\\"\},'
        r'\\"attr\\":\\"hold_render\\",\\"new\\":(?:true|false)\}'
    )
    page = re.sub(hold + ",", "", page)
    page = re.sub("," + hold, "", page)
    page = re.sub(hold, "", page)
    # Panel's extension scripts are server-relative URLs; a saved view uses none of Panel's extensions
    return re.sub(r'<script[^>]*src="static/extensions/[^"]*"[^>]*>\s*</script>', "", page)


def _pane(view):
    """A Panel pane of a view, its widgets above it."""
    import panel as pn

    return pn.panel(view, widget_location="top_left") if hasattr(view, "kdims") else pn.panel(view)


# -- helpers --------------------------------------------------------------------------------------------------


def _robust_limits(frames: list[np.ndarray]) -> tuple[float, float]:
    """2nd and 98th percentiles over all frames (ignoring empty cells); a span even if all equal."""
    values = np.concatenate([np.asarray(f, dtype=np.float64).ravel() for f in frames])
    values = values[np.isfinite(values) & (values != 0 if values.dtype.kind == "i" else True)]
    if not values.size:
        return 0.0, 1.0
    low, high = (float(v) for v in np.percentile(values, [2, 98]))
    return (low, high) if high > low else (low - 0.5, low + 0.5)


def _time_starts(gridded: xr.Dataset) -> list:
    """The slider's values: each bin's start, or its index where the result has no time coordinate."""
    import pandas as pd

    if "time" not in gridded.coords or np.isnat(np.asarray(gridded.time.values, dtype="datetime64[ns]")).any():
        return list(range(gridded.sizes["time"]))
    return [pd.Timestamp(t) for t in gridded.time.values]


def _time_labels(gridded: xr.Dataset) -> list[str]:
    if "time" not in gridded.coords or np.isnat(np.asarray(gridded.time.values, dtype="datetime64[ns]")).all():
        start, end = gridded.attrs.get("time_coverage_start", ""), gridded.attrs.get("time_coverage_end", "")
        return [f"{start[:10]} to {end[:10]}" if start else "all times"]
    freq = str(gridded.attrs.get("time_binning", ""))
    fmt = 7 if freq in ("MS", "M", "ME") else 10 if "D" in freq or "W" in freq else 16
    return [f"{str(t)[:fmt]} ({freq})" if freq else str(t)[:fmt] for t in gridded.time.values]


def _outline_lines(crs_attrs: dict[str, Any], bounds) -> dict[str, list]:
    """Coastlines and a graticule, projected into the grid and clipped loosely to the map."""
    from pyproj import CRS, Transformer

    from is2grid.viz.coastlines import coastlines

    to_grid = Transformer.from_crs("EPSG:4326", CRS.from_cf(dict(crs_attrs)), always_xy=True)
    x0, x1, y0, y1 = bounds
    pad = 0.2 * max(x1 - x0, y1 - y0)

    def project(lines):
        xs, ys = [], []
        for line in lines:
            x, y = to_grid.transform(line[:, 0], line[:, 1])
            keep = (x > x0 - pad) & (x < x1 + pad) & (y > y0 - pad) & (y < y1 + pad)
            if keep.sum() > 1:
                xs.append(np.where(keep, x, np.nan).tolist())
                ys.append(np.where(keep, y, np.nan).tolist())
        return {"xs": xs, "ys": ys}

    south = CRS.from_cf(dict(crs_attrs)).to_cf().get("latitude_of_projection_origin", 90) < 0
    sign = -1 if south else 1
    circles = [np.column_stack([np.linspace(-180, 180, 361), np.full(361, sign * lat)]) for lat in (50, 60, 70, 80)]
    meridians = [
        np.column_stack([np.full(50, lon), np.linspace(sign * 40, sign * 89.9, 50)]) for lon in range(-180, 180, 30)
    ]
    return {"coast": project(coastlines()), "graticule": project(circles + meridians)}


def _bokeh_backend() -> None:
    """HoloViews' Bokeh backend, loaded without ``hv.extension`` (whose notebook output asks CDNs for JavaScript)."""
    import holoviews as hv
    import holoviews.plotting.bokeh  # registers the backend and its options

    hv.Store.set_current_backend("bokeh")


def segments_explorer(
    ds: xr.Dataset, color: str = "freeboard", *, res: float = 6250, width: int = 720, output_backend: str = "webgl"
):
    """Millions of segments rasterized with datashader, re-aggregated on zoom in a live server.

    Parameters
    ----------
    ds : xarray.Dataset
        Segments of one or many granules (``engine="atl10"`` or ``"atl07"``, :func:`is2grid.open_granules`).
    color : {"freeboard", "beam"}
        The mean of the product's variable per pixel (ATL10 freeboard, ATL07 height), or the beams in their
        own colours.
    res : float
        The EASE-Grid 2.0 whose projection is used (only its CRS matters).
    width : int
        Map width in pixels.
    output_backend : {"webgl", "canvas"}
        How the browser draws the map's outlines (the rasterized image is drawn the same either way);
        HoloViews' default, WebGL, is kept.

    Returns
    -------
    holoviews.DynamicMap
        Hover shows the pixel's mean and the first segment in it (latitude, longitude, value, beam,
        time); a notebook with a kernel or :func:`serve` re-aggregate on zoom, a saved page keeps
        the first aggregation. ``.is2grid["segments"]`` is the number drawn.
    """
    need("viz", "the segments explorer", ("bokeh", "holoviews", "panel", "datashader"))
    from is2grid.grid.grids import ease2_grid, to_xy
    from is2grid.products import icesat2, of_dataset

    if color not in ("freeboard", "beam"):
        raise GridError(f"color={color!r}: use 'freeboard' or 'beam'.")
    product = of_dataset(ds)
    variable = product.variable
    for name in ("latitude", "longitude", variable):
        if name not in ds.variables:
            raise GridError(f"explore() on segments needs {name!r} (open the granule with the default variables).")
    grid = ease2_grid(icesat2.hemisphere_of_dataset(ds), res)
    values = np.asarray(ds[variable].values, dtype=np.float64)
    keep = np.isfinite(values)
    if not keep.any():
        raise GridError(f"explore(): no valid {variable} to draw.")
    lon, lat = np.asarray(ds.longitude.values)[keep], np.asarray(ds.latitude.values)[keep]
    x, y = to_xy(lon, lat, grid.crs)
    beams = np.asarray(ds["beam"].values)[keep].astype(str) if "beam" in ds.variables else np.full(x.size, "all")
    times = np.asarray(ds["delta_time"].values)[keep] if "delta_time" in ds.variables else None
    units = str(ds[variable].attrs.get("units", ""))
    limits = _robust_limits([values[keep]])
    bounds = (float(x.min()), float(x.max()), float(y.min()), float(y.max()))

    import datashader as dsh
    import holoviews as hv
    import pandas as pd
    from holoviews.operation.datashader import datashade, rasterize

    _bokeh_backend()
    columns = {"x": x, "y": y, variable: values[keep], "latitude": lat, "longitude": lon, "beam": pd.Categorical(beams)}
    if times is not None:
        columns["time"] = pd.to_datetime(times)
    points = hv.Points(pd.DataFrame(columns), kdims=["x", "y"], vdims=[c for c in columns if c not in ("x", "y")])
    if color == "freeboard":
        shaded = rasterize(points, aggregator=dsh.mean(variable), selector=dsh.first(variable)).opts(
            cmap="viridis", clim=limits, colorbar=True, tools=["hover"], clabel=f"mean {variable} ({units})"
        )
    else:
        from bokeh.palettes import Category10

        present = sorted(set(beams.tolist()))
        key = dict(zip(present, Category10[10], strict=False))
        shaded = datashade(points, aggregator=dsh.count_cat("beam"), color_key=key)
    pad = 0.05 * max(bounds[1] - bounds[0], bounds[3] - bounds[2])
    extent = (bounds[0] - pad, bounds[1] + pad, bounds[2] - pad, bounds[3] + pad)
    view = _on_map(shaded, grid.cf_grid_mapping(), extent, width, output_backend).opts(
        title=f"{int(keep.sum()):,} {product.name} segments by {color}, EASE-Grid 2.0 {grid.hemisphere} projection"
    )
    view.is2grid = {"segments": int(keep.sum()), "beams": sorted(set(beams.tolist()))}
    return view


# -- time series ----------------------------------------------------------------------------------------------


def timeseries_plot(series: xr.Dataset, width: int = 760, height: int = 320):
    """The region series as a line with its spread (mean +- std); empty bins stay gaps.

    Returns
    -------
    holoviews.Overlay

    Examples
    --------
    >>> import tempfile
    >>> from is2grid import tutorial, timeseries
    >>> ds = xr.open_dataset(tutorial.write_granule(tempfile.mkdtemp(), n_segments=2000), engine="atl10")
    >>> view = timeseries_plot(timeseries.region_timeseries(ds.is2grid.to_ease2(res=25000), "southern_ocean"))
    >>> type(view).__name__
    'Overlay'
    """
    need("viz", "the time series chart", ("bokeh", "holoviews", "panel"))
    import holoviews as hv
    import pandas as pd

    from is2grid.grid.gridding import statistic_names

    roles = statistic_names(series)
    mean, std, count = roles["mean"], roles["std"], roles["count"]
    if mean not in series or "time" not in series.dims:
        raise GridError("timeseries_plot needs a region time series with a time axis (from .is2grid.timeseries()).")
    _bokeh_backend()
    frame = pd.DataFrame(
        {
            "time": pd.to_datetime(series.time.values),
            mean: series[mean].values,
            "low": (series[mean] - series[std]).values,
            "high": (series[mean] + series[std]).values,
            "n_segments": series[count].values,
        }
    )
    units = series[mean].attrs.get("units", "m")
    what = str(series[mean].attrs.get("long_name", mean)).removesuffix(" in the region")
    label = f"{series.attrs.get('region_title', 'region')}: {what} ({units})"
    time = hv.Dimension("time", label="time bin start (UTC)")
    fb = hv.Dimension(mean, label=f"{what.removeprefix('length-weighted mean ')} ({units})")
    spread = hv.Area(frame, time, ["low", "high"], label="mean ± std").opts(alpha=0.25, color="#4c78a8", line_width=0)
    line = hv.Curve(frame, time, [fb, "n_segments"], label="mean").opts(color="#1f3b73", line_width=2, tools=["hover"])
    dots = hv.Scatter(frame, time, [fb, "n_segments"]).opts(color="#1f3b73", size=5, tools=["hover"])
    return (spread * line * dots).opts(
        title=label, width=width, height=height, show_grid=True, legend_position="top_left", ylabel=fb.label
    )
