"""The ``is2grid`` command: the demo on bundled synthetic data, gridding real granules, and a granule summary."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

#: Exit codes of a run stopped by a signal, as shells report them (128 + signal number).
EXIT_CODES: dict[int, int] = {signal.SIGINT: 130, signal.SIGTERM: 143}


class Stopped(BaseException):
    """A SIGINT or SIGTERM arrived: stop, leave no partial output, exit 130 or 143."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """While gridding: SIGINT and SIGTERM raise :class:`Stopped` (nothing has been written yet)."""

    def handler(signum, frame):
        raise Stopped(signum)

    previous = {s: signal.signal(s, handler) for s in EXIT_CODES}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


@contextlib.contextmanager
def deferred_signals() -> Iterator[list[int]]:
    """While writing: remember SIGINT/SIGTERM and act after the write (netCDF's C library must not be cut)."""
    pending: list[int] = []
    previous = {s: signal.signal(s, lambda signum, frame: pending.append(signum)) for s in EXIT_CODES}
    try:
        yield pending
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def main(argv: list[str] | None = None) -> int:
    """Run the ``is2grid`` command with ``argv`` (default: the process's arguments); return its exit code."""
    from is2grid._version import __version__

    parser = argparse.ArgumentParser(prog="is2grid", description="ICESat-2 ATL10 freeboard -> gridded time series.")
    parser.add_argument("--version", action="version", version=f"is2grid {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="grid a month of bundled synthetic Antarctic granules (NetCDF + PNG map)")
    demo.add_argument("--out", type=Path, default=Path("is2grid-demo"), help="output folder (default: ./is2grid-demo)")
    demo.add_argument("--res", type=float, default=12500, help="EASE-Grid 2.0 cell size in m (default 12500)")
    demo.add_argument("--freq", default="1D", help="time bins, a pandas alias (default 1D)")
    demo.add_argument("--cache", type=Path, default=None, help="where the synthetic granules are cached")
    demo.add_argument("--n-segments", type=int, default=6000, help="segments per strong beam and granule")

    grid = sub.add_parser(
        "grid",
        help="grid ATL10 or ATL07 granules (paths, s3:// or https:// URLs, or --search) into NetCDF or Zarr",
        description="Grid ATL10 (freeboard) or ATL07 (height) granules, the product's default variable or any "
        "numeric segment variable (--variable). A Zarr v3 store (--format zarr, or --out ending in .zarr) is "
        "written bin by bin (bounded memory) and a rerun of the same command resumes it; NetCDF is one file.",
    )
    grid.add_argument("granules", nargs="*", help="granule paths or URLs (or use --search)")
    grid.add_argument("--out", type=Path, required=True, help="the NetCDF file or Zarr store written")
    grid.add_argument(
        "--format",
        choices=("auto", "netcdf", "zarr"),
        default="auto",
        help="output format (default auto: a Zarr store if --out ends in .zarr, else NetCDF)",
    )
    grid.add_argument(
        "--product",
        type=str.upper,
        choices=("ATL10", "ATL07"),
        default=None,
        help="the granules' product (default: from their names, ATL10 if they say none)",
    )
    grid.add_argument(
        "--variable",
        default=None,
        help="the segment variable to grid (default: ATL10 beam_fb_height, ATL07 height_segment_height)",
    )
    grid.add_argument("--overwrite", action="store_true", help="replace --out if it exists (a store: start over)")
    grid.add_argument("--png", type=Path, default=None, help="also draw a quicklook map of the gridded mean")
    grid.add_argument("--search", action="store_true", help="find the granules with earthaccess (--time, --region)")
    grid.add_argument(
        "--region",
        default=None,
        help="a named region (e.g. ross, weddell, beaufort): searched, and the window gridded unless --bbox is given",
    )
    grid.add_argument("--time", default=None, help="a period for --search and the time axis: 2019, 2019-09, 2019-09-15")
    grid.add_argument("--res", type=float, default=6250, help="EASE-Grid 2.0 cell size in m (default 6250)")
    grid.add_argument("--grid", default=None, help="'nsidc_ps25' for the ATL20 polar stereographic grid")
    grid.add_argument(
        "--errors",
        choices=("raise", "skip"),
        default="raise",
        help="skip: leave out granules that cannot be read, and list them (default: stop at the first)",
    )
    grid.add_argument(
        "--in-flight",
        type=int,
        default=None,
        metavar="N",
        help="granules opened and fetched ahead while one is gridded (default: 8 for URLs, 1 for local files)",
    )
    grid.add_argument("--hemisphere", choices=("north", "south"), default=None, help="default: from the granules")
    grid.add_argument("--freq", default="1D", help="pandas alias, or 'none' for one grid")
    grid.add_argument(
        "--bbox",
        type=float,
        nargs=4,
        metavar=("LON_MIN", "LAT_MIN", "LON_MAX", "LAT_MAX"),
        help="keep segments in this lon/lat box and grid the window around it (LON_MIN > LON_MAX crosses 180)",
    )
    grid.add_argument(
        "--bbox-xy",
        type=float,
        nargs=4,
        metavar=("XMIN", "YMIN", "XMAX", "YMAX"),
        default=None,
        help="a box in the grid's projected metres instead",
    )
    grid.add_argument("--full-grid", action="store_true", help="the whole hemisphere's grid")
    grid.add_argument(
        "--time-range",
        nargs=2,
        metavar=("START", "END"),
        default=None,
        help="fix the time axis to these dates (inclusive), e.g. 2019-09-01 2019-09-30",
    )
    grid.add_argument(
        "--segment-types",
        type=int,
        nargs="+",
        default=None,
        help="keep these height_segment_type values, e.g. 1 (sea ice only; leads 2-9, cloud 0)",
    )
    grid.add_argument(
        "--max-quality",
        type=int,
        default=None,
        help="keep 1 <= quality flag <= this (ATL10 beam_fb_quality_flag, ATL07 height_segment_fit_quality_flag)",
    )
    grid.add_argument(
        "--range",
        "--fb-range",
        dest="value_range",
        type=float,
        nargs=2,
        metavar=("MIN", "MAX"),
        default=None,
        help="keep values of the gridded variable in [MIN, MAX] (its units)",
    )
    grid.add_argument(
        "--snow",
        default=None,
        help="derive sea ice thickness first, with this snow: w99, mw99, zero_ice_freeboard, or a file (--snow-file); "
        "then grid --variable ice_thickness (or snow_depth, ice_thickness_unc...)",
    )
    grid.add_argument("--first-year-ice", type=float, default=None, help="mw99: the first-year ice fraction, 0-1")
    grid.add_argument("--snow-file", type=Path, default=None, help="a NetCDF/Zarr file of snow depth (m) to sample")
    grid.add_argument("--snow-var", default="snow_depth", help="its snow depth variable (default snow_depth)")
    grid.add_argument(
        "--min-segments",
        type=int,
        default=1,
        help="statistics NaN in cells with fewer segments (counts kept; default 1)",
    )
    grid.add_argument(
        "--beams", default="strong", help="strong (default), weak, all, or beam names separated by commas"
    )
    grid.add_argument(
        "--memory-budget",
        type=float,
        default=None,
        help="GB an in-memory result may take (default: half the available memory)",
    )

    explore = sub.add_parser(
        "explore",
        help="an interactive map in the browser: a gridded file/store, or granules' segments",
        description="Serve an interactive map on 127.0.0.1 (a NetCDF file or Zarr store from 'is2grid grid': time "
        "slider and statistic selector; ATL10 granules: their segments rasterized), or save it as one offline "
        "HTML page with --save.",
    )
    explore.add_argument("inputs", nargs="+", help="a .nc file or .zarr store, or ATL10 granules")
    explore.add_argument("--var", default=None, help="statistic shown first (default: the gridded mean)")
    explore.add_argument("--color", choices=("freeboard", "beam"), default="freeboard", help="segments: colour by")
    explore.add_argument("--save", type=Path, default=None, help="write a self-contained HTML page instead of serving")
    explore.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    explore.add_argument("--max-mb", type=float, default=25, help="MB of map cells a saved page may carry (default 25)")

    series = sub.add_parser(
        "timeseries",
        help="a region's time series (n_segments, mean and std of freeboard) as CSV, PNG and HTML",
        description="Per time bin: segments, length-weighted mean freeboard and its std in a region, exact from "
        "the cell sums of a gridded file/store, or gridded from granules first (--res, --freq).",
    )
    series.add_argument("inputs", nargs="+", help="a .nc file or .zarr store, or ATL10 granules")
    series.add_argument("--region", required=True, help="a named region (ross, weddell, beaufort...) or a GeoJSON file")
    series.add_argument("--csv", type=Path, default=None, help="write the series as CSV")
    series.add_argument("--png", type=Path, default=None, help="draw the series")
    series.add_argument("--html", type=Path, default=None, help="the interactive chart as one offline HTML page")
    series.add_argument("--freq", default="1D", help="granules: time bins (default 1D)")
    series.add_argument("--res", type=float, default=6250, help="granules: cell size deciding the region's edge")

    info = sub.add_parser("info", help="print a summary of ATL10 granules as the atl10 engine opens them")
    info.add_argument("granules", nargs="+", help="granule paths or URLs")

    args = parser.parse_args(argv)
    if args.command in ("demo", "grid"):  # this process is the command's own: few malloc arenas (is2grid._malloc)
        from is2grid import _malloc

        _malloc.fewer_arenas()
    formatted = warnings.formatwarning
    warnings.formatwarning = _format_warning  # the message, not the source line that raised it
    try:
        with stop_on_signals():
            commands = {"demo": _demo, "grid": _grid, "explore": _explore, "timeseries": _timeseries, "info": _info}
            return commands[args.command](args)
    except Stopped as stop:
        wrote_nothing = args.command in ("grid", "demo") and getattr(args, "out", Path()).suffix != ".zarr"
        kept = "; nothing was written" if wrote_nothing else ""
        print(f"is2grid: stopped by {signal.Signals(stop.signum).name}{kept}.", file=sys.stderr)
        return EXIT_CODES[stop.signum]
    except Exception as err:  # a command-line user gets the message, not a traceback
        from is2grid.errors import Is2gridError

        if isinstance(err, Is2gridError | ValueError | FileNotFoundError):
            print(f"is2grid: error: {err}", file=sys.stderr)
            return 2
        raise
    finally:
        warnings.formatwarning = formatted


def _format_warning(message, category, filename, lineno, line=None) -> str:
    return f"is2grid: {category.__name__}: {message}\n"


def _demo(args) -> int:
    from is2grid import tutorial, workflow
    from is2grid.viz import plot

    start = time.perf_counter()
    print("1/5 synthetic Antarctic granules for September 2019 (written once, then cached)")
    paths = tutorial.sample_month(args.cache, progress=True, n_segments=args.n_segments)
    print(f"    {len(paths)} granules in {paths[0].parent}")
    print(f"2/5 gridding onto EASE-Grid 2.0 South at {args.res / 1000:g} km, {args.freq} bins")
    result = workflow.grid_granules(paths, res=args.res, freq=None if args.freq.lower() == "none" else args.freq)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"is2grid_demo_{result.attrs['grid']}_201909"
    with deferred_signals() as pending:  # the demo replaces its own earlier results
        nc = workflow.write_netcdf(result, args.out / f"{stem}.nc", overwrite=True)
    if pending:
        Path(nc).unlink(missing_ok=True)
        raise Stopped(pending[0])
    print("3/5 quicklook map")
    png = args.out / f"{stem}_mean_fb.png"
    plot.quicklook(result, "mean_fb", path=png)
    print(_summary(result))
    print(f"NetCDF: {Path(nc).resolve()}\nMap:    {png.resolve()}")
    print("4/5 ATL07: a week of synthetic Arctic sea ice heights, gridded at 25 km over the week")
    heights = workflow.grid_granules(_demo_atl07(args), res=25000, freq=None, progress=False)
    stem07 = f"is2grid_demo_ATL07_{heights.attrs['grid']}_201903"
    with deferred_signals() as pending:
        nc07 = workflow.write_netcdf(heights, args.out / f"{stem07}.nc", overwrite=True)
    if pending:
        Path(nc07).unlink(missing_ok=True)
        raise Stopped(pending[0])
    png07 = args.out / f"{stem07}_mean_height.png"
    plot.quicklook(heights, path=png07)
    print(_summary(heights))
    print(f"NetCDF: {Path(nc07).resolve()}\nMap:    {png07.resolve()}")
    print("5/5 sea ice thickness: the same week of Arctic ATL10 freeboards, snow from W99, at 25 km")
    thick = workflow.grid_granules(_demo_arctic(args), res=25000, freq=None, progress=False,
                                   variable="ice_thickness", thickness={"snow": "w99"})  # fmt: skip
    stem_h = f"is2grid_demo_thickness_{thick.attrs['grid']}_201903"
    with deferred_signals() as pending:
        nc_h = workflow.write_netcdf(thick, args.out / f"{stem_h}.nc", overwrite=True)
    if pending:
        Path(nc_h).unlink(missing_ok=True)
        raise Stopped(pending[0])
    png_h = args.out / f"{stem_h}_mean_ice_thickness.png"
    plot.quicklook(thick, path=png_h)
    print(_summary(thick))
    print(f"NetCDF: {Path(nc_h).resolve()}\nMap:    {png_h.resolve()}\n({time.perf_counter() - start:.0f} s)")
    return 0


def _demo_atl07(args) -> list[Path]:
    """Seven synthetic ATL07 granules of March 2019 (one a day), cached beside the ATL10 sample."""
    return _demo_week(args, "ATL07")


def _demo_arctic(args) -> list[Path]:
    """The same week's tracks as ATL10 granules (freeboard), for thickness."""
    return _demo_week(args, "ATL10")


def _demo_week(args, product: str) -> list[Path]:
    import platformdirs

    from is2grid import tutorial

    root = Path(args.cache) if args.cache is not None else Path(platformdirs.user_cache_dir("is2grid"))
    folder = root / f"synthetic-{product.lower()}-north-201903-n{args.n_segments}"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for day in range(7):
        rgt = 100 + 97 * day
        start = f"2019-03-{day + 1:02d}T02:00:00"
        name = tutorial.granule_name("north", start, rgt, 2, product=product)
        if not (folder / name).exists():
            tutorial.write_granule(folder / name, product=product, hemisphere="north", rgt=rgt, cycle=2, start=start,
                                   n_segments=args.n_segments, sc_orient=day % 2,
                                   lan=(rgt * 37.3) % 360.0 - 180.0)  # fmt: skip
        paths.append(folder / name)
    return paths


def _grid(args) -> int:
    from is2grid import earthdata, workflow
    from is2grid.grid import regions
    from is2grid.grid.request import GridRequest
    from is2grid.viz import plot

    granules = list(args.granules)
    area = regions.region(args.region) if args.region else None
    period = earthdata.time_span(args.time) if args.time else None
    if args.search:
        if period is None:
            raise ValueError("--search needs --time (e.g. --time 2019-09) and usually --region.")
        found = args.product or "ATL10"
        granules += earthdata.search(area, (period[0], period[1]), hemisphere=args.hemisphere, product=found)
        print(f"found {len(granules)} {found} granules")
    if not granules:
        raise ValueError("no granules: give paths or URLs, or --search with --time and --region.")
    bbox = tuple(args.bbox) if args.bbox else None
    if bbox is None and area is not None and args.bbox_xy is None and not args.full_grid:
        bbox = area.bbox
    time_range = tuple(args.time_range) if args.time_range else period
    product = workflow.product_of_granules(granules, args.product)
    # the options and the output location are checked before any work
    request = GridRequest.create(
        args.grid or "ease2",
        res=args.res,
        hemisphere=args.hemisphere
        or (area.hemisphere if area and area.hemisphere else None)
        or workflow.hemisphere_of_granules(granules, product=product),
        freq=None if args.freq.lower() == "none" else args.freq,
        bbox=bbox,
        bbox_xy=tuple(args.bbox_xy) if args.bbox_xy else None,
        full_grid=args.full_grid,
        time_range=time_range,
        segment_types=args.segment_types,
        max_quality=args.max_quality,
        value_range=tuple(args.value_range) if args.value_range else None,
        min_segments=args.min_segments,
        product=product,
        variable=args.variable,
    )
    if area is not None:
        area.check_hemisphere(request.hemisphere)
    to_store = args.format == "zarr" or (args.format == "auto" and args.out.suffix == ".zarr")
    if not to_store:
        workflow.check_output(args.out, overwrite=args.overwrite, inputs=granules)
    if args.png:
        workflow.check_output(args.png, overwrite=True, inputs=granules)
    budget = args.memory_budget * 1e9 if args.memory_budget else "auto"
    thickness = _thickness_options(args)
    try:
        result = workflow.grid_granules(
            granules,
            request,
            beams=args.beams.split(",") if "," in args.beams else args.beams,
            errors=args.errors,
            memory_budget=budget,
            store=args.out if to_store else None,
            overwrite=args.overwrite,
            thickness=thickness,
            in_flight=args.in_flight,
        )
    except Stopped:
        if to_store:
            print(f"is2grid: {args.out} holds what was finished; rerun the same command to resume.", file=sys.stderr)
        raise
    if "granules_skipped" in result.attrs:
        skipped = result.attrs["granules_skipped"].splitlines()
        print(f"skipped {len(skipped)} granules that could not be read:")
        print("\n".join("  " + line for line in skipped))
    print(_summary(result))
    if to_store:
        print(f"Zarr:   {args.out.resolve()}")
    else:
        with deferred_signals() as pending:
            written = workflow.write_netcdf(result, args.out, overwrite=args.overwrite, inputs=granules)
        if pending:
            Path(written).unlink(missing_ok=True)
            raise Stopped(pending[0])
        print(f"NetCDF: {Path(written).resolve()}")
    if int(result.n_segments.sum()) == 0:
        print(f"no valid segments in {len(granules)} granules: the output describes an empty result; no map.")
        return 0
    if args.png:
        plot.quicklook(result, request.names[2], path=args.png)
        print(f"Map:    {args.png.resolve()}")
    return 0


def _thickness_options(args) -> dict | None:
    """The thickness= of grid_granules from --snow, --first-year-ice, --snow-file, --snow-var."""
    if args.snow is None and args.snow_file is None:
        return None
    if args.snow_file is not None:
        import xarray as xr

        opened = xr.open_zarr(args.snow_file) if args.snow_file.suffix == ".zarr" else xr.open_dataset(args.snow_file)
        if args.snow_var not in opened:
            raise ValueError(f"{args.snow_file}: no variable {args.snow_var!r} (it has {sorted(opened.data_vars)}).")
        snow: Any = opened[args.snow_var].load()
    else:
        snow = args.snow
    options: dict = {"snow": snow}
    if args.first_year_ice is not None:
        options["first_year_ice"] = args.first_year_ice
    return options


def _open_inputs(inputs: list[str]):
    """A gridded Dataset (one .nc file or .zarr store) or the segments of granules, and which it is."""
    import xarray as xr

    from is2grid import open_granules

    first = Path(inputs[0])
    if len(inputs) == 1 and (first.suffix == ".zarr" or (first / "zarr.json").exists()):
        return xr.open_zarr(first), True
    if len(inputs) == 1 and first.suffix == ".nc":
        if not first.exists():
            raise FileNotFoundError(f"{first}: no such file")
        return xr.open_dataset(first), True
    return open_granules(inputs), False


def _explore(args) -> int:
    import threading

    from is2grid.viz import explore

    ds, gridded = _open_inputs(args.inputs)
    if gridded:
        view = explore.grid_explorer(ds, args.var, max_bytes=args.max_mb * 1e6)
    else:
        view = explore.segments_explorer(ds, args.color)
    title = f"is2grid: {Path(args.inputs[0]).name}"
    if args.save:
        print(f"HTML:   {Path(explore.save(view, args.save, title)).resolve()}")
        return 0
    served = explore.serve(view, args.port, title=title)
    print(f"is2grid explore: serving {served.url} (Ctrl-C stops)", flush=True)
    try:
        threading.Event().wait()
    finally:
        served.stop()
    return 0


def _timeseries(args) -> int:
    from is2grid.grid import regions, timeseries

    area = regions.region(args.region)
    ds, gridded = _open_inputs(args.inputs)
    if gridded:
        series = timeseries.region_timeseries(ds, area)
    else:
        series = timeseries.segments_timeseries(ds, area, freq=None if args.freq.lower() == "none" else args.freq,
                                                res=args.res)  # fmt: skip
    frame = series.drop_vars(["crs"], errors="ignore").to_dataframe()
    with_data = frame[frame.n_segments > 0]
    mean = _mean_of(series)
    print(f"{area.title}: {len(frame)} time bins, {len(with_data)} with segments, {int(frame.n_segments.sum())} "
          f"segments; {_said(series[mean])} {with_data[mean].mean():.3f} over the bins with data")  # fmt: skip
    if args.csv:
        args.csv.parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(args.csv, float_format="%.6g")
        print(f"CSV:    {args.csv.resolve()}")
    if args.png:
        from is2grid.viz.plot import timeseries_figure

        timeseries_figure(series, path=args.png)
        print(f"PNG:    {args.png.resolve()}")
    if args.html:
        from is2grid.viz import explore

        page = explore.save(explore.timeseries_plot(series), args.html, f"is2grid: {area.title}")
        print(f"HTML:   {Path(page).resolve()}")
    return 0


def _info(args) -> int:
    import xarray as xr

    from is2grid import products
    from is2grid.backend.entrypoints import entrypoint

    for path in args.granules:
        product = products.of_name(path) or products.ATL10
        ds = xr.open_dataset(path, engine=entrypoint(product.name))
        print(ds)
        values = ds[product.variable]
        print(f"  valid {product.variable}: {int(values.count())} of {ds.sizes['segment']}; mean "
              f"{float(values.mean()):.3f} {values.attrs.get('units', '')}\n")  # fmt: skip
    return 0


def _mean_of(result) -> str:
    """The name of the gridded mean in a result or a series (``mean_fb`` for ATL10 freeboard)."""
    from is2grid.grid.gridding import statistic_names

    return statistic_names(result)["mean"]


def _said(mean) -> str:
    """A mean in words with its units: 'length-weighted mean sea ice freeboard (m)'."""
    return f"{mean.attrs.get('long_name', mean.name)} ({mean.attrs.get('units', '')})"


def _summary(result) -> str:
    n = result.n_segments
    if int(n.sum()) == 0:
        return f"{result.attrs['grid']}: no valid segments (all fill, filtered out or outside the window)"
    cells = int((n.sum("time") if "time" in n.dims else n).astype(bool).sum())
    times = f"{result.sizes.get('time', 1)} time bins" + (
        f" from {str(result.time.values[0])[:10]} to {str(result.time.values[-1])[:10]}"
        if "time" in result.dims and result.sizes["time"]
        else ""
    )
    mean = result[_mean_of(result)]
    return (
        f"{result.attrs['grid']} window {result.sizes['y']} (y) x {result.sizes['x']} (x) cells, {times}; "
        f"{int(n.sum())} segments in {cells} cells; {_said(mean)}, averaged over the cells: {float(mean.mean()):.3f}"
    )


if __name__ == "__main__":
    sys.exit(main())
