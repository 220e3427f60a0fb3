"""Reading benchmark (issue 2): load the default variables of the strong beams of N full-size granules.

(a) engine="atl10" + .load()   (b) raw h5coro readDatasets (the floor)   (c) h5py
(d) xarray engine="h5netcdf", one open per beam group, concatenated   (e) the NSIDC tutorial's reader
(h5coro into GeoDataFrames, re-implemented here from its description).

Usage: python benchmarks/bench_read.py [--granules 3] [--repeats 5]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

sys.path.insert(0, str(Path(__file__).parent))
from common import CACHE, machine, median, peak_rss_in_subprocess, rss_growth, table, timed

from is2grid import tutorial
from is2grid.products import ATL10, icesat2

NAMES = [*ATL10.default_variables, *icesat2.COORDINATES]
PATHS = ATL10.segment_variables


def granules(n: int) -> list[Path]:
    folder = CACHE / "full-size"
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        path = folder / tutorial.granule_name("south", f"2019-09-{i + 1:02d}T05:00:00", rgt=200 + i, cycle=4)
        if not path.exists():
            print(f"writing full-size synthetic granule {path.name}", flush=True)
            tutorial.write_granule(path, n_segments=250_000, rgt=200 + i, start=f"2019-09-{i + 1:02d}T05:00:00", seed=i)
        out.append(path)
    return out


def strong(path) -> list[str]:
    import h5py

    with h5py.File(path) as f:
        return list(icesat2.STRONG_BEAMS[int(f["orbit_info/sc_orient"][0])])


def engine(paths):
    return [xr.open_dataset(p, engine="atl10").load() for p in paths]


def raw_h5coro(paths):
    from h5coro import filedriver, h5coro

    out = []
    for p in paths:
        granule = h5coro.H5Coro(str(p), filedriver.FileDriver)
        orient = granule.readDatasets(["orbit_info/sc_orient"], block=True)["orbit_info/sc_orient"][0]
        wanted = [f"{b}/{PATHS[n]}" for b in icesat2.STRONG_BEAMS[int(orient)] for n in NAMES]
        promise = granule.readDatasets(wanted, block=True)
        out.append({w: promise[w] for w in wanted})
    return out


def with_h5py(paths):
    import h5py

    out = []
    for p in paths:
        with h5py.File(p) as f:
            beams = icesat2.STRONG_BEAMS[int(f["orbit_info/sc_orient"][0])]
            out.append({n: np.concatenate([f[f"{b}/{PATHS[n]}"][:] for b in beams]) for n in NAMES})
    return out


def with_h5netcdf(paths):
    out = []
    for p in paths:
        parts = []
        for beam in strong(p):
            top = xr.open_dataset(p, engine="h5netcdf", group=f"{beam}/freeboard_segment", phony_dims="access")
            sub = xr.open_dataset(p, engine="h5netcdf", group=f"{beam}/freeboard_segment/heights", phony_dims="access")
            names_top = [n for n in NAMES if PATHS[n].count("/") == 1]
            names_sub = [n for n in NAMES if PATHS[n].count("/") == 2]
            dim_top, dim_sub = top[names_top[0]].dims[0], sub[names_sub[0]].dims[0]
            merged = xr.merge(
                [top[names_top].rename({dim_top: "segment"}), sub[names_sub].rename({dim_sub: "segment"})],
                compat="override",
            )
            parts.append(merged.load())
        out.append(xr.concat(parts, dim="segment"))
    return out


def tutorial_reader(paths):
    """The tutorial's method: h5coro per granule, GPS time, points -> GeoDataFrame, dropna."""
    import geopandas as gpd
    from h5coro import filedriver, h5coro

    gps_epoch = pd.to_datetime("1980-01-06 00:00:00")
    tracks = []
    for p in paths:
        f = h5coro.H5Coro(str(p), filedriver.FileDriver)
        anc = f.readDatasets(["orbit_info/sc_orient", "ancillary_data/atlas_sdp_gps_epoch"], block=True)
        beams = icesat2.STRONG_BEAMS[int(anc["orbit_info/sc_orient"][0])]
        epoch = anc["ancillary_data/atlas_sdp_gps_epoch"][:]
        wanted = [f"{b}/{PATHS[n]}" for b in beams for n in NAMES]
        promise = f.readDatasets(wanted, block=True)
        for beam in beams:
            d = {n: promise[f"{beam}/{PATHS[n]}"][:] for n in NAMES}
            d["delta_time"] = gps_epoch + pd.to_timedelta(d["delta_time"] + epoch, unit="s")
            d["beam"] = beam
            d["beam_fb_height"] = np.where(d["beam_fb_height"] > 100, np.nan, d["beam_fb_height"])
            geometry = gpd.points_from_xy(d.pop("longitude"), d.pop("latitude"))
            gdf = gpd.GeoDataFrame(d, geometry=geometry, crs="EPSG:4326")
            tracks.append(gdf.dropna(axis=0))
    return pd.concat(tracks)


def main() -> str:
    parser = argparse.ArgumentParser()
    parser.add_argument("--granules", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--memory-of", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    paths = granules(args.granules)
    if args.memory_of is not None:  # child process: one method, report peak RSS growth
        import geopandas  # noqa: F401  (imports happen before the baseline)
        import h5py  # noqa: F401
        from h5coro import h5coro  # noqa: F401

        import is2grid.backend.opening  # noqa: F401

        print(rss_growth(lambda: list(methods_for(paths).values())[int(args.memory_of)]()))
        return ""
    sizes = [p.stat().st_size / 1e6 for p in paths]
    segments = sum(xr.open_dataset(p, engine="atl10").sizes["segment"] for p in paths)
    methods = methods_for(paths)
    for fn in methods.values():  # warm the OS page cache and imports once
        fn()
    times = timed(methods, args.repeats)
    floor = median(times["(b) raw h5coro readDatasets (floor)"])
    for name, t in times.items():
        print(f"{name}: median {median(t):.2f} s ({median(t) / floor:.2f} x floor)", flush=True)
    peaks = {
        name: peak_rss_in_subprocess(__file__, "--granules", str(args.granules), "--memory-of", str(i))
        for i, name in enumerate(methods)
    }
    rows = [
        [name, f"{median(t):.2f}", f"{min(t):.2f}", f"{median(t) / floor:.2f}", f"{peaks[name] / 1e6:.0f}"]
        for name, t in times.items()
    ]
    report = (
        f"Machine: {machine()}\n\n{args.granules} full-size synthetic granules "
        f"({', '.join(f'{s:.0f}' for s in sizes)} MB), "
        f"{segments:,} strong-beam segments, {len(NAMES)} variables; warm page cache; {args.repeats} interleaved "
        f"repeats.\n\n" + table(rows, ["method", "median s", "min s", "median / floor", "peak RSS growth MB"])
    )
    print(report)
    return report


def methods_for(paths):
    return {
        "(a) is2grid engine + .load()": lambda: engine(paths),
        "(b) raw h5coro readDatasets (floor)": lambda: raw_h5coro(paths),
        "(c) h5py": lambda: with_h5py(paths),
        "(d) xarray h5netcdf per group + concat": lambda: with_h5netcdf(paths),
        "(e) tutorial reader (h5coro -> GeoDataFrame)": lambda: tutorial_reader(paths),
    }


if __name__ == "__main__":
    main()
