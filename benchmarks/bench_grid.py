"""Gridding benchmark (issue 3): a month-like set of several million loaded segments -> EASE2 6.25 km daily.

(a) ds.is2grid.to_ease2(res=6250, freq="1D")
(b) the floor: pyproj transform + integer cell/day codes + pd.factorize + np.bincount of the four sums, no labels
(c) the NSIDC tutorial's method: GeoDataFrame.to_crs + per-point Affine loop + groupby.apply of the four
    statistics, timed on a subsample and scaled linearly
(d) pandas groupby on vectorised cell codes
(e) pyresample's BucketResampler (no time bins: it grids one 2-D field, so it is compared with (a) at freq=None)

Usage: python benchmarks/bench_grid.py [--segments 10000000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

sys.path.insert(0, str(Path(__file__).parent))
from common import machine, median, peak_memory, table, timed

import is2grid  # noqa: F401
from is2grid import tutorial
from is2grid.products import icesat2

RES, N, EXTENT = 6250.0, 2880, 9_000_000.0


def month_of_segments(target: int, seed: int = 0) -> xr.Dataset:
    """Strong-beam segments of a month of synthetic Antarctic tracks, built in memory like loaded granules."""
    rng = np.random.default_rng(seed)
    per_track = 250_000
    tracks = max(1, target // (3 * per_track))
    cols = {k: [] for k in ("latitude", "longitude", "delta_time", "length", "fb")}
    for i in range(tracks):
        day = i * 30 // tracks
        start = np.datetime64("2019-09-01T01:00") + np.timedelta64(int(day * 86400 + i * 1800), "s")
        t0 = float(icesat2.seconds_since_epoch(start))
        lan = (i * 137.5) % 360 - 180
        for beam in ("gt1l", "gt2l", "gt3l"):
            track = tutorial._beam_track(beam, "south", lan, t0, per_track, True, rng)
            fb = tutorial._freeboard_field(track["latitude"], track["longitude"], day, "south")
            cols["latitude"].append(track["latitude"])
            cols["longitude"].append(track["longitude"])
            cols["delta_time"].append(track["delta_time"])
            cols["length"].append(track["length"])
            cols["fb"].append((fb + rng.normal(0, 0.08, fb.size)).clip(0).astype(np.float32))
    c = {k: np.concatenate(v) for k, v in cols.items()}
    return xr.Dataset(
        {"beam_fb_height": ("segment", c["fb"]), "height_segment_length_seg": ("segment", c["length"])},
        coords={
            "latitude": ("segment", c["latitude"]),
            "longitude": ("segment", c["longitude"]),
            "delta_time": ("segment", icesat2.ATLAS_EPOCH + (c["delta_time"] * 1e9).astype("timedelta64[ns]")),
        },
        attrs={"hemisphere": "south"},
    )


def floor(ds):
    from pyproj import Transformer

    lat, lon = ds.latitude.values, ds.longitude.values
    fb = ds.beam_fb_height.values.astype(np.float64)
    length = ds.height_segment_length_seg.values.astype(np.float64)
    x, y = Transformer.from_crs(4326, 6932, always_xy=True).transform(lon, lat)
    col = np.floor((x + EXTENT) / RES).astype(np.int64)
    row = np.floor((EXTENT - y) / RES).astype(np.int64)
    day = ds.delta_time.values.astype("datetime64[D]").astype(np.int64)
    ok = (col >= 0) & (col < N) & (row >= 0) & (row < N) & np.isfinite(fb)
    codes, uniques = pd.factorize(((day * N + row) * N + col)[ok])
    lh = (length * fb)[ok]
    return uniques, [np.bincount(codes, w, len(uniques)) for w in (None, length[ok], lh, lh * fb[ok])]


def pandas_groupby(ds):
    from pyproj import Transformer

    x, y = Transformer.from_crs(4326, 6932, always_xy=True).transform(ds.longitude.values, ds.latitude.values)
    fb = ds.beam_fb_height.values.astype(np.float64)
    length = ds.height_segment_length_seg.values.astype(np.float64)
    frame = pd.DataFrame(
        {
            "day": ds.delta_time.values.astype("datetime64[D]"),
            "cell": np.floor((EXTENT - y) / RES).astype(np.int64) * N + np.floor((x + EXTENT) / RES).astype(np.int64),
            "L": length,
            "Lh": length * fb,
            "Lh2": length * fb * fb,
        }
    )
    sums = frame.groupby(["day", "cell"]).agg(n=("L", "size"), L=("L", "sum"), Lh=("Lh", "sum"), Lh2=("Lh2", "sum"))
    return sums.assign(mean_fb=sums.Lh / sums.L, std_fb=np.sqrt((sums.Lh2 / sums.L - (sums.Lh / sums.L) ** 2).clip(0)))


def tutorial_method(ds, sample: int):
    """The tutorial: GeoDataFrame.to_crs, a Python loop of Affine transforms per point, groupby.apply."""
    import geopandas as gpd
    from affine import Affine

    sub = ds.isel(segment=slice(0, sample))
    gdf = gpd.GeoDataFrame(
        {
            "beam_fb_height": sub.beam_fb_height.values,
            "height_segment_length_seg": sub.height_segment_length_seg.values,
            "delta_time": sub.delta_time.values,
        },
        geometry=gpd.points_from_xy(sub.longitude.values, sub.latitude.values),
        crs="EPSG:4326",
    ).to_crs(6932)
    fwd = Affine.from_gdal(-EXTENT, RES, 0.0, EXTENT, 0.0, -RES)

    def get_grid_index(xy):
        col, row = ~fwd * xy
        return (np.floor(row) * N) + np.floor(col)

    gdf["grid_index"] = [get_grid_index((x, y)) for x, y in zip(gdf.geometry.x, gdf.geometry.y, strict=True)]
    gdf["day"] = gdf.delta_time.dt.floor("D")

    def stats(g):
        L, h = g.height_segment_length_seg, g.beam_fb_height
        mean = (L * h).sum() / L.sum()
        return pd.Series(
            {"n": len(g), "mean_len": L.mean(), "mean_fb": mean, "var_fb": (L * h * h).sum() / L.sum() - mean**2}
        )

    return gdf.groupby(["day", "grid_index"]).apply(stats)


def pyresample_bucket(ds):
    import dask.array as da
    from pyresample import create_area_def
    from pyresample.bucket import BucketResampler

    area = create_area_def(
        "ease2_s_6250", "EPSG:6932", width=N, height=N, area_extent=(-EXTENT, -EXTENT, EXTENT, EXTENT)
    )
    lons = da.from_array(ds.longitude.values, chunks=2_000_000)
    lats = da.from_array(ds.latitude.values, chunks=2_000_000)
    resampler = BucketResampler(area, lons, lats)
    length = da.from_array(ds.height_segment_length_seg.values.astype(np.float64), chunks=2_000_000)
    fb = da.from_array(ds.beam_fb_height.values.astype(np.float64), chunks=2_000_000)
    count = resampler.get_count()
    sums = [resampler.get_sum(v) for v in (length, length * fb, length * fb * fb)]
    import dask

    return dask.compute(count, *sums)


def main() -> str:
    parser = argparse.ArgumentParser()
    parser.add_argument("--segments", type=int, default=10_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tutorial-sample", type=int, default=200_000)
    args = parser.parse_args()
    ds = month_of_segments(args.segments).load()
    n = ds.sizes["segment"]
    input_bytes = sum(
        ds[v].nbytes for v in ("latitude", "longitude", "delta_time", "beam_fb_height", "height_segment_length_seg")
    )
    print(f"{n:,} segments, {input_bytes / 1e6:.0f} MB of input columns", flush=True)

    result = ds.is2grid.to_ease2(res=RES, freq="1D")
    _, ref_sums = floor(ds)
    assert int(result.n_segments.sum()) == int(ref_sums[0].sum()), "is2grid and the floor disagree on counts"
    output_bytes = sum(result[v].nbytes for v in result.data_vars)

    methods = {
        "(a) to_ease2(res=6250, freq='1D')": lambda: ds.is2grid.to_ease2(res=RES, freq="1D"),
        "(b) floor: pyproj + codes + factorize + bincount": lambda: floor(ds),
        "(d) pandas groupby on cell codes": lambda: pandas_groupby(ds),
    }
    times = timed(methods, args.repeats)
    sample = args.tutorial_sample
    tut = timed({"tutorial": lambda: tutorial_method(ds, sample)}, 1)["tutorial"][0] * n / sample
    nobins = timed(
        {
            "(a') to_ease2(res=6250, freq=None)": lambda: ds.is2grid.to_ease2(res=RES, freq=None, full_grid=True),
            "(e) pyresample BucketResampler (no time bins)": lambda: pyresample_bucket(ds),
        },
        args.repeats,
    )
    peak = peak_memory(lambda: ds.is2grid.to_ease2(res=RES, freq="1D"))
    fl = median(times["(b) floor: pyproj + codes + factorize + bincount"])
    rows = [[k, f"{median(v):.2f}", f"{median(v) / fl:.2f}"] for k, v in times.items()]
    rows.append(
        [f"(c) tutorial method (timed on {sample:,}, scaled x{n / sample:.0f})", f"{tut:.0f}", f"{tut / fl:.0f}"]
    )
    rows += [[k, f"{median(v):.2f}", f"{median(v) / fl:.2f}"] for k, v in nobins.items()]
    report = (
        f"Machine: {machine()}\n\n{n:,} segments of a synthetic Antarctic month, EASE-Grid 2.0 South 6.25 km; "
        f"{result.sizes['time']} daily bins, window {result.sizes['y']} x {result.sizes['x']}; "
        f"{args.repeats} interleaved repeats, medians.\n\n"
        + table(rows, ["method", "median s", "ratio to floor (b)"])
        + f"\n\nPeak traced memory of (a): {peak / 1e6:.0f} MB; input columns {input_bytes / 1e6:.0f} MB + output "
        f"{output_bytes / 1e6:.0f} MB = {(input_bytes + output_bytes) / 1e6:.0f} MB; ratio "
        f"{peak / (input_bytes + output_bytes):.2f} (target <= 3)."
    )
    print(report)
    return report


if __name__ == "__main__":
    main()
