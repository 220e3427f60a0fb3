"""Building blocks of the gridding tests: segment Datasets as the engine gives them, and the reference check."""

from __future__ import annotations

import dask
import numpy as np
import pyproj
import xarray as xr

from .reference import brute_force, gridded_cells

TO_LONLAT = {
    "south": pyproj.Transformer.from_crs(6932, 4326, always_xy=True),
    "north": pyproj.Transformer.from_crs(6931, 4326, always_xy=True),
}


def segments(lat, lon, time=None, length=None, fb=None, hemisphere="south", **extra) -> xr.Dataset:
    """A minimal segment Dataset, as the engine would give it."""
    lat = np.atleast_1d(np.asarray(lat, dtype=np.float64))
    n = lat.size
    time = (
        np.full(n, np.datetime64("2019-09-15T12:00:00", "ns")) if time is None else np.asarray(time, "datetime64[ns]")
    )
    data = {
        "beam_fb_height": ("segment", np.full(n, 0.3, np.float32) if fb is None else np.asarray(fb, np.float32)),
        "height_segment_length_seg": (
            "segment",
            np.full(n, 20.0, np.float32) if length is None else np.asarray(length, np.float32),
        ),
        **{k: ("segment", np.asarray(v)) for k, v in extra.items()},
    }
    coords = {
        "latitude": ("segment", lat),
        "longitude": ("segment", np.asarray(lon, np.float64)),
        "delta_time": ("segment", time),
    }
    return xr.Dataset(data, coords=coords, attrs={"hemisphere": hemisphere})


def at_xy(x, y, hemisphere="south"):
    lon, lat = TO_LONLAT[hemisphere].transform(np.asarray(x, float), np.asarray(y, float))
    return np.atleast_1d(lat), np.atleast_1d(lon)


def assert_matches_reference(ds, grid_ds, epsg, res, variable="beam_fb_height", stem="fb"):
    ref = brute_force(
        ds.latitude.values,
        ds.longitude.values,
        ds.delta_time.values,
        ds.height_segment_length_seg.values.astype(float),
        np.nan_to_num(ds[variable].values.astype(float), nan=np.nan),
        epsg=epsg,
        res=res,
    )
    got = gridded_cells(grid_ds, mean=f"mean_{stem}", std=f"std_{stem}")
    assert got.keys() == ref.keys()
    for key, (count, mean_len, mean_fb, std_fb, *_) in ref.items():
        g = got[key]
        assert g[0] == count, key
        np.testing.assert_allclose(g[1:3], (mean_len, mean_fb), rtol=1e-12, atol=1e-12, err_msg=str(key))
        # one-pass sum(L h^2)/sum(L) - mean^2 (ATL20) cancels: float64 leaves ~sqrt(eps * h^2) in the std
        np.testing.assert_allclose(g[3], std_fb, rtol=1e-9, atol=1e-7, err_msg=str(key))
    assert int(grid_ds.n_segments.sum()) == sum(v[0] for v in ref.values())


class CountingScheduler:
    """A dask scheduler that fails when anything is computed (flox's raise_if_dask_computes)."""

    def __init__(self, max_computes=0):
        self.total_computes = 0
        self.max_computes = max_computes

    def __call__(self, dsk, keys, **kwargs):
        self.total_computes += 1
        if self.total_computes > self.max_computes:
            raise RuntimeError(f"dask computed {self.total_computes} times; at most {self.max_computes} allowed")
        return dask.get(dsk, keys, **kwargs)


def raise_if_dask_computes(max_computes=0):
    return dask.config.set(scheduler=CountingScheduler(max_computes))
