"""Interactive maps in the browser: gridded results with a time slider, segments rasterized, region series.

Everything is drawn in the grid's own projection (EASE-Grid 2.0 LAEA or NSIDC polar stereographic)
in metres, with the bundled coastlines and a graticule, so nothing is downloaded and no geoviews is
needed. Hover converts the pointer's x/y to latitude/longitude in the browser with the exact
ellipsoidal inverse of the projection (:data:`LONLAT_JS`).

The gridded map is a Bokeh document whose frames (every time bin of every statistic, coarsened
exactly where needed to fit ``max_bytes``) travel with the page: the slider swaps frames in the
browser, so it works the same in a live Panel server, in a notebook, and in a saved HTML file that
opens with no network (Bokeh's JavaScript is inlined). A HoloViews ``Image`` carries one value per
pixel, which is why the map is built with Bokeh itself: hover shows the value and ``n_segments`` of
the same cell.
"""

from __future__ import annotations

import html
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from is2grid._extras import need
from is2grid.errors import GridError
from is2grid.grid import reduction
from is2grid.products.base import ROLES

__all__ = ["LONLAT_JS", "Explorer", "Served", "grid_explorer", "segments_explorer", "timeseries_plot"]

#: JavaScript: ``lonlat(x, y, p)`` -> [lon, lat] in degrees for the polar projections of is2grid's grids
#: (Snyder 1987, Map Projections: A Working Manual, USGS PP 1395: LAEA polar aspect eqs. 24-28 and
#: 3-18, polar stereographic eqs. 21-33 to 21-40, on the ellipsoid).
LONLAT_JS = """
function lonlat(x, y, p) {
  const D = Math.PI / 180, a = p.a, e2 = p.e2, e = Math.sqrt(e2), s = p.south ? -1 : 1;
  const X = s * x, Y = s * y, lon0 = s * p.lon0, rho = Math.hypot(X, Y);
  let lat;
  if (p.kind === "laea") {
    const qp = (1 - e2) * (1 / (1 - e2) - Math.log((1 - e) / (1 + e)) / (2 * e));
    const q = qp - (rho * rho) / (a * a);
    const beta = Math.asin(Math.max(-1, Math.min(1, q / qp)));
    const e4 = e2 * e2, e6 = e4 * e2;
    lat = beta + (e2 / 3 + 31 * e4 / 180 + 517 * e6 / 5040) * Math.sin(2 * beta)
        + (23 * e4 / 360 + 251 * e6 / 3780) * Math.sin(4 * beta) + (761 * e6 / 45360) * Math.sin(6 * beta);
  } else {
    const phic = p.lat_ts * D, sc = Math.sin(phic);
    const mc = Math.cos(phic) / Math.sqrt(1 - e2 * sc * sc);
    const tc = Math.tan(Math.PI / 4 - phic / 2) / Math.pow((1 - e * sc) / (1 + e * sc), e / 2);
    const t = rho * tc / (a * mc);
    lat = Math.PI / 2 - 2 * Math.atan(t);
    for (let i = 0; i < 15; i++) {
      const es = e * Math.sin(lat);
      lat = Math.PI / 2 - 2 * Math.atan(t * Math.pow((1 - es) / (1 + es), e / 2));
    }
  }
  let lon = lon0 + Math.atan2(X, -Y) / D;
  lon = ((lon + 540) % 360) - 180;
  return [s * (lon === -180 ? 180 : lon), s * lat / D];
}
"""


def projection_parameters(crs_attrs: dict[str, Any]) -> dict[str, Any]:
    """What :data:`LONLAT_JS` needs, from a CF grid mapping (the ``crs`` variable's attributes).

    Examples
    --------
    >>> from is2grid.grid.grids import ease2_grid
    >>> p = projection_parameters(ease2_grid("south", 25000).cf_grid_mapping())
    >>> p["kind"], p["south"], p["a"]
    ('laea', True, 6378137.0)
    """
    from pyproj import CRS

    cf = CRS.from_cf(dict(crs_attrs)).to_cf()
    a = float(cf.get("semi_major_axis", 6378137.0))
    rf = cf.get("inverse_flattening")
    b = cf.get("semi_minor_axis")
    f = 1 / float(rf) if rf else (1 - float(b) / a if b else 1 / 298.257223563)
    ellipsoid = {"a": a, "e2": f * (2 - f)}
    name = cf.get("grid_mapping_name")
    if name == "lambert_azimuthal_equal_area":
        lat0 = float(cf["latitude_of_projection_origin"])
        return {"kind": "laea", **ellipsoid, "south": lat0 < 0, "lon0": float(cf["longitude_of_projection_origin"])}
    if name == "polar_stereographic":
        lat_ts = float(cf.get("standard_parallel", cf.get("latitude_of_projection_origin", 90.0)))
        lon0 = float(cf["straight_vertical_longitude_from_pole"])
        return {"kind": "stere", **ellipsoid, "south": lat_ts < 0, "lon0": lon0, "lat_ts": abs(lat_ts)}
    raise GridError(f"maps need a polar LAEA or polar stereographic grid, not {name!r}.")


@dataclass
class Explorer:
    """An interactive view: shown in notebooks, served with Panel, saved as one offline HTML file.

    Built by :func:`grid_explorer`, :func:`segments_explorer` and :func:`timeseries_plot` (or the
    accessor's ``explore``); ``make`` builds a fresh Bokeh or HoloViews object each time it is shown.
    """

    make: Any
    title: str = "is2grid"
    kind: str = "bokeh"
    details: dict[str, Any] = field(default_factory=dict)

    def model(self):
        """A new Bokeh model of the view."""
        if self.kind == "holoviews":
            import holoviews as hv

            return hv.render(self.make(), backend="bokeh")
        return self.make()

    def html(self) -> str:
        """The whole view as one HTML page, Bokeh's JavaScript inlined (opens with no network)."""
        from bokeh.embed import file_html
        from bokeh.resources import INLINE

        page = file_html(self.model(), INLINE, self.title)
        # Panel registers a Bokeh extension whose script is a server-relative URL; the view uses none of
        # Panel's models, and a saved page must not ask for files that are not there
        return re.sub(r'<script[^>]*src="static/extensions/[^"]*"[^>]*>\s*</script>', "", page)

    def save(self, path: str | os.PathLike) -> str:
        """Write :meth:`html` to ``path`` (written to a temporary name, then renamed)."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
        partial.write_text(self.html(), encoding="utf-8")
        os.replace(partial, target)
        return os.fspath(target)

    def panel(self):
        """A Panel object of the view (for ``pn.serve`` or a dashboard)."""
        import panel as pn

        if self.kind == "holoviews":
            return pn.pane.HoloViews(self.make(), sizing_mode="stretch_width")
        return pn.pane.Bokeh(self.make())

    def serve(self, port: int = 0, *, show: bool = False) -> Served:
        """Serve the view on http://127.0.0.1:port with Panel, in a background thread.

        ``port=0`` picks a free port. The server answers pages of its own origin only. Rasterized
        views re-aggregate on zoom. Stop it with ``served.stop()``.
        """
        import socket

        import panel as pn

        if port == 0:
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                port = probe.getsockname()[1]
        origins = [f"127.0.0.1:{port}", f"localhost:{port}"]
        thread = pn.serve(
            {"/": self.panel}, port=port, address="127.0.0.1", show=show, threaded=True, title=self.title,
            websocket_origin=origins, start=True, verbose=False,
        )  # fmt: skip
        return Served(f"http://127.0.0.1:{port}/", port, thread)

    def _repr_html_(self) -> str:
        # a self-contained iframe: renders in JupyterLab, VS Code and exported notebooks alike
        height = int(self.details.get("height", 620)) + 40
        return (
            f'<iframe srcdoc="{html.escape(self.html(), quote=True)}" style="width:100%;height:{height}px;border:0" '
            f'title="{html.escape(self.title)}"></iframe>'
        )


@dataclass
class Served:
    """A running view server: its URL and how to stop it."""

    url: str
    port: int
    thread: Any

    def stop(self) -> None:
        """Stop the server."""
        self.thread.stop()


# -- gridded results ----------------------------------------------------------------------------------------


def grid_explorer(
    gridded: xr.Dataset,
    var: str | None = None,
    *,
    max_bytes: float = 48e6,
    width: int = 720,
    palette: str = "Viridis256",
) -> Explorer:
    """A map of a gridded result with a time slider, a statistic selector, colour bar and hover.

    Parameters
    ----------
    gridded : xarray.Dataset
        A result of ``to_ease2``/``to_grid``/``grid_granules``, a NetCDF file or Zarr store opened
        with xarray.
    var : str
        The statistic shown first (``mean_fb``, ``std_fb``, ``n_segments``, ``mean_seg_length``, or the
        ``mean_<stem>``... of another gridded variable); default the mean.
    max_bytes : float
        Frames of all bins and statistics travel with the page; when they would exceed this, cells
        are combined k x k (exactly, from their sums) and the title says so.
    width : int
        Map width in pixels.
    palette : str
        A Bokeh palette name.

    Returns
    -------
    Explorer

    Examples
    --------
    >>> import tempfile
    >>> from is2grid import tutorial
    >>> ds = xr.open_dataset(tutorial.write_granule(tempfile.mkdtemp(), n_segments=2000), engine="atl10")
    >>> view = grid_explorer(ds.is2grid.to_ease2(res=25000))
    >>> view.details["frames"], view.details["factor"]
    (1, 1)
    """
    need("viz", "the explorer", ("bokeh", "holoviews", "panel"))
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
    per_cell = 4 * 4  # three float32 statistics and an int32 count per cell and bin
    factor = max(1, int(np.ceil(np.sqrt(nt * ny * nx * per_cell / max_bytes))))
    frames = [_coarsened(gridded.isel(time=t), factor, stats) for t in range(nt)]
    limits = {name: _robust_limits([f[name] for f in frames]) for name in stats}
    res = float(gridded.attrs.get("grid_resolution_m", abs(float(gridded.x[1] - gridded.x[0])) if nx > 1 else 1.0))
    labels = _time_labels(gridded)
    details = {
        "frames": nt,
        "factor": factor,
        "shown_resolution_m": res * factor,
        "height": int(width * ny / nx) + 120,
        "times": labels,
    }

    half = res / 2
    x0, y1 = float(gridded.x.min()) - half, float(gridded.y.max()) + half
    extent = (
        x0,
        x0 + res * factor * frames[0][roles["mean"]].shape[1],
        y1 - res * factor * frames[0][roles["mean"]].shape[0],
        y1,
    )
    lines = _outline_lines(dict(gridded["crs"].attrs), extent)  # once: every page served reuses them

    def make():
        return _grid_document(gridded, frames, limits, labels, var, factor, res, width, palette, extent, lines, stats)

    return Explorer(make, f"is2grid: {gridded.attrs.get('grid', '')} {var}", "bokeh", details)


def _coarsened(frame: xr.Dataset, factor: int, stats: list[str]) -> dict[str, np.ndarray]:
    """One bin's statistics, k x k cells combined exactly from their sums; rows bottom-up for Bokeh."""
    n = np.asarray(frame[stats[0]].values, dtype=np.float64)
    mean_length, mean_fb, std_fb = (np.asarray(frame[v].values, dtype=np.float64) for v in stats[1:])
    if factor > 1:
        # cells whose statistics are NaN (fewer than min_segments) carry no sums: they add to the count shown,
        # not to the statistics
        known = np.where(np.isfinite(mean_length), n, 0.0)
        sums = [n, known, *reduction.length_sums(known, mean_length, mean_fb, std_fb)]
        ny, nx = n.shape
        py, px = -ny % factor, -nx % factor
        combined = []
        for s in sums:
            s = np.pad(np.nan_to_num(s), ((0, py), (0, px)))
            combined.append(s.reshape(s.shape[0] // factor, factor, s.shape[1] // factor, factor).sum(axis=(1, 3)))
        _, mean_length, mean_fb, std_fb = reduction.statistics(*combined[1:])
        n = combined[0]
    out = {
        stats[0]: np.flipud(np.asarray(n, dtype=np.int32)),
        stats[1]: np.flipud(np.asarray(mean_length, dtype=np.float32)),
        stats[2]: np.flipud(np.asarray(mean_fb, dtype=np.float32)),
        stats[3]: np.flipud(np.asarray(std_fb, dtype=np.float32)),
    }
    out[SHOWN] = np.where(out[stats[0]] > 0, out[stats[0]], np.nan).astype(np.float32)
    return out


def _robust_limits(frames: list[np.ndarray]) -> tuple[float, float]:
    """2nd and 98th percentiles over all frames (ignoring empty cells); a span even if all equal."""
    values = np.concatenate([np.asarray(f, dtype=np.float64).ravel() for f in frames])
    values = values[np.isfinite(values) & (values != 0 if values.dtype.kind == "i" else True)]
    if not values.size:
        return 0.0, 1.0
    low, high = (float(v) for v in np.percentile(values, [2, 98]))
    return (low, high) if high > low else (low - 0.5, low + 0.5)


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


#: the counts as drawn: empty cells transparent (NaN), not the colour of zero
SHOWN = "count shown"


def _grid_document(gridded, frames, limits, labels, var, factor, res, width, palette, extent, lines, stats):
    from bokeh.layouts import column, row
    from bokeh.models import (
        ColorBar,
        ColumnDataSource,
        CustomJS,
        CustomJSTickFormatter,
        Div,
        HoverTool,
        LinearColorMapper,
        Select,
        Slider,
    )
    from bokeh.plotting import figure

    crs_attrs = dict(gridded["crs"].attrs)
    x0, x1, y0, y1 = extent
    height = int(width * (y1 - y0) / (x1 - x0))
    names = {name: gridded[name].attrs.get("long_name", name) for name in stats}
    units = {name: gridded[name].attrs.get("units", "") for name in stats}
    count = stats[0]

    def image(t, name):
        return frames[t][SHOWN if name == count else name]

    source = ColumnDataSource(
        {
            "image": [image(0, var)],
            "n": [frames[0][count]],
            "x": [x0],
            "y": [y0],
            "dw": [x1 - x0],
            "dh": [y1 - y0],
        }
    )
    store = ColumnDataSource({f"{name}|{t}": [image(t, name)] for t in range(len(frames)) for name in stats})
    counts = ColumnDataSource({str(t): [frames[t][count]] for t in range(len(frames))})
    mapper = LinearColorMapper(palette=palette, low=limits[var][0], high=limits[var][1], nan_color=(0, 0, 0, 0))
    resolution = f"{res * factor / 1000:g} km" + (
        f" (cells combined {factor} x {factor} to fit the page)" if factor > 1 else ""
    )
    title = f"{gridded.attrs.get('grid', '')} at {resolution}: {labels[0]}"
    fig = figure(
        width=width, height=height, x_range=(x0, x1), y_range=(y0, y1), match_aspect=True, title=title,
        tools="pan,wheel_zoom,box_zoom,reset,save", active_scroll="wheel_zoom",
        x_axis_label="x (km)", y_axis_label="y (km)", background_fill_color="#f4f6f8",
    )  # fmt: skip
    kilometres = CustomJSTickFormatter(code="return (tick / 1000).toLocaleString('en-US')")
    fig.xaxis.formatter = kilometres
    fig.yaxis.formatter = kilometres
    glyph = fig.image(image="image", x="x", y="y", dw="dw", dh="dh", source=source, color_mapper=mapper)
    fig.multi_line(xs="xs", ys="ys", source=ColumnDataSource(lines["graticule"]), color="#9aa5b1", line_width=0.6,
                   line_dash="dotted")  # fmt: skip
    fig.multi_line(xs="xs", ys="ys", source=ColumnDataSource(lines["coast"]), color="#303030", line_width=1.0)
    hover = HoverTool(
        renderers=[glyph],
        tooltips=[
            ("cell centre latitude", "$y{lat}"),
            ("cell centre longitude", "$x{lon}"),
            ("value", "@image{0.000}"),
            ("n_segments", "@n"),
        ],
        formatters=_lonlat_formatters(crs_attrs, {"x0": x0, "y0": y0, "size": res * factor}),
    )
    fig.add_tools(hover)
    bar = ColorBar(color_mapper=mapper, title=f"{names[var]} ({units[var]})", title_standoff=8, width=14)
    fig.add_layout(bar, "right")
    slider = Slider(start=0, end=max(len(frames) - 1, 1), value=0, step=1, title=f"time bin: {labels[0]}",
                    width=width - 260, disabled=len(frames) < 2, show_value=False)  # fmt: skip
    select = Select(title="statistic", value=var, options=[(n, names[n]) for n in stats], width=220)
    callback = CustomJS(
        args={"source": source, "store": store, "counts": counts, "mapper": mapper, "bar": bar, "fig": fig,
              "slider": slider, "select": select, "labels": labels, "limits": limits, "names": names, "units": units,
              "prefix": f"{gridded.attrs.get('grid', '')} at {resolution}: "},
        code="""
        const t = slider.value, name = select.value;
        source.data = {...source.data, image: [store.data[name + "|" + t][0]], n: [counts.data[String(t)][0]]};
        mapper.low = limits[name][0]; mapper.high = limits[name][1];
        bar.title = names[name] + " (" + units[name] + ")";
        slider.title = "time bin: " + labels[t];
        fig.title.text = prefix + labels[t];
        """,
    )  # fmt: skip
    slider.js_on_change("value", callback)
    select.js_on_change("value", callback)
    note = Div(
        text=f"<small>{html.escape(str(gridded.attrs.get('title', '')))}. Filters: "
        f"{html.escape(str(gridded.attrs.get('filters', '')))}. Colour limits: 2nd-98th percentile over all bins. "
        "Coastlines: Natural Earth 1:110m.</small>",
        width=width,
    )
    return column(row(slider, select), fig, note)


def _lonlat_formatters(crs_attrs: dict[str, Any], cells: dict[str, float] | None = None) -> dict[str, Any]:
    """Bokeh hover formatters giving latitude (``$y{lat}``) and longitude (``$x{lon}``).

    With ``cells`` (``x0``, ``y0``: a cell corner; ``size``: the cell size shown) the position is that
    of the centre of the cell under the pointer; otherwise the pointer's own.
    """
    from bokeh.models import CustomJSHover

    params = projection_parameters(crs_attrs)
    snap = cells or {"size": 0.0, "x0": 0.0, "y0": 0.0}

    def formatter(index: int):
        code = (
            f"{LONLAT_JS}\n"
            "let x = special_vars.x, y = special_vars.y;\n"
            "if (c.size > 0) {\n"
            "  x = c.x0 + (Math.floor((x - c.x0) / c.size) + 0.5) * c.size;\n"
            "  y = c.y0 + (Math.floor((y - c.y0) / c.size) + 0.5) * c.size;\n"
            "}\n"
            f"return lonlat(x, y, p)[{index}].toFixed(4) + '°';"
        )
        return CustomJSHover(args={"p": params, "c": snap}, code=code)

    return {"$y": formatter(1), "$x": formatter(0)}


def _bokeh_backend() -> None:
    """HoloViews' Bokeh backend, loaded without ``hv.extension`` (whose notebook output asks CDNs for JavaScript)."""
    import holoviews as hv
    import holoviews.plotting.bokeh  # registers the backend and its options

    hv.Store.set_current_backend("bokeh")


# -- segments -------------------------------------------------------------------------------------------------


def segments_explorer(ds: xr.Dataset, color: str = "freeboard", *, res: float = 6250, width: int = 720) -> Explorer:
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

    Returns
    -------
    Explorer
        A HoloViews view (``kind="holoviews"``): a notebook with a kernel or ``serve`` re-aggregate
        on zoom; a saved page keeps the first aggregation.
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
    fb = np.asarray(ds[variable].values, dtype=np.float64)
    keep = np.isfinite(fb)
    x, y = to_xy(np.asarray(ds.longitude.values)[keep], np.asarray(ds.latitude.values)[keep], grid.crs)
    beams = np.asarray(ds["beam"].values)[keep] if "beam" in ds.variables else np.full(x.size, "all")
    crs_attrs = grid.cf_grid_mapping()
    details = {"segments": int(keep.sum()), "height": width}
    if not keep.any():
        raise GridError(f"explore(): no valid {variable} to draw.")
    limits = _robust_limits([fb[keep]])
    bounds = (float(x.min()), float(x.max()), float(y.min()), float(y.max()))
    lines = _outline_lines(crs_attrs, bounds)

    def make():
        import datashader as dsh
        import holoviews as hv
        import pandas as pd
        from bokeh.models import HoverTool
        from holoviews.operation.datashader import datashade, rasterize

        _bokeh_backend()
        frame = pd.DataFrame({"x": x, "y": y, "freeboard": fb[keep], "beam": pd.Categorical(beams)})
        points = hv.Points(frame, kdims=["x", "y"], vdims=["freeboard", "beam"])
        hover = HoverTool(
            tooltips=[("latitude", "$y{lat}"), ("longitude", "$x{lon}"), ("value", "@image{0.000}")],
            formatters=_lonlat_formatters(crs_attrs),
        )
        size = {"frame_width": width}
        if color == "freeboard":
            shaded = rasterize(points, aggregator=dsh.mean("freeboard")).opts(
                cmap="viridis", clim=limits, colorbar=True, tools=[hover], **size,
                clabel=f"mean {product.stem(variable)} ({ds[variable].attrs.get('units', '')})",
            )  # fmt: skip
        else:
            from bokeh.palettes import Category10

            names = sorted({str(b) for b in beams})
            key = dict(zip(names, Category10[10], strict=False))
            shaded = datashade(points, aggregator=dsh.count_cat("beam"), color_key=key).opts(**size)
        coast = hv.Path(
            [np.column_stack([a, b]) for a, b in zip(lines["coast"]["xs"], lines["coast"]["ys"], strict=True)]
        )
        from bokeh.models import CustomJSTickFormatter

        kilometres = CustomJSTickFormatter(code="return (tick / 1000).toLocaleString('en-US')")
        return (shaded * coast.opts(color="#303030", line_width=1)).opts(
            title=f"{details['segments']:,} {product.name} segments by {color}, EASE-Grid 2.0 {grid.hemisphere} "
            "projection",
            xlabel="x (km)", ylabel="y (km)", data_aspect=1, xformatter=kilometres, yformatter=kilometres,
            xlim=(bounds[0], bounds[1]), ylim=(bounds[2], bounds[3]),
        )  # fmt: skip

    return Explorer(make, "is2grid: segments", "holoviews", details)


# -- time series ----------------------------------------------------------------------------------------------


def timeseries_plot(series: xr.Dataset, width: int = 760, height: int = 320) -> Explorer:
    """The region series as a line with its spread (mean +- std); empty bins stay gaps.

    Examples
    --------
    >>> import tempfile
    >>> from is2grid import tutorial, timeseries
    >>> ds = xr.open_dataset(tutorial.write_granule(tempfile.mkdtemp(), n_segments=2000), engine="atl10")
    >>> view = timeseries_plot(timeseries.region_timeseries(ds.is2grid.to_ease2(res=25000), "southern_ocean"))
    >>> view.kind
    'holoviews'
    """
    need("viz", "the time series chart", ("bokeh", "holoviews", "panel"))
    from is2grid.grid.gridding import statistic_names

    roles = statistic_names(series)
    mean, std, count = roles["mean"], roles["std"], roles["count"]
    if mean not in series or "time" not in series.dims:
        raise GridError("timeseries_plot needs a region time series with a time axis (from .is2grid.timeseries()).")

    def make():
        import holoviews as hv
        import pandas as pd

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
        spread = hv.Area(frame, time, ["low", "high"], label="mean ± std").opts(
            alpha=0.25, color="#4c78a8", line_width=0
        )
        line = hv.Curve(frame, time, [fb, "n_segments"], label="mean").opts(
            color="#1f3b73", line_width=2, tools=["hover"]
        )
        dots = hv.Scatter(frame, time, [fb, "n_segments"]).opts(color="#1f3b73", size=5, tools=["hover"])
        return (spread * line * dots).opts(
            title=label, width=width, height=height, show_grid=True, legend_position="top_left", ylabel=fb.label
        )

    return Explorer(make, f"is2grid: {series.attrs.get('region_title', 'region')} time series", "holoviews",
                    {"height": height})  # fmt: skip
