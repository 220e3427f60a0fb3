"""One regression test per bug of the NSIDC tutorial that is2grid replaces."""

from __future__ import annotations

import numpy as np
import pyproj
import xarray as xr

from is2grid.grid import grids
from is2grid.products import icesat2
from is2grid.viz import plot

from .helpers import at_xy, segments


def test_time_is_utc_so_late_segments_stay_in_their_day():
    # tutorial: 1980-01-06 + atlas_sdp_gps_epoch + delta_time = GPS time, 18 s ahead of UTC
    seconds = icesat2.seconds_since_epoch(np.array(["2019-09-15T23:59:50"], dtype="datetime64[ns]"))
    ds = segments([-75.0], [0.0], time=np.array(["2019-09-15T23:59:50"], dtype="datetime64[ns]"))
    # as opened with decode_times=False
    ds = ds.assign_coords(delta_time=("segment", seconds, {"units": "seconds since 2018-01-01"}))
    grid = ds.is2grid.to_ease2(res=25000, freq="1D")
    assert str(grid.time.values[0])[:10] == "2019-09-15" and grid.sizes["time"] == 1
    gps = np.datetime64("1980-01-06", "ns") + np.timedelta64(int((seconds[0] + 1198800018.0) * 1e9), "ns")
    assert str(gps)[:10] == "2019-09-16"  # where the tutorial would have put it


def test_std_is_the_square_root_of_the_variance():
    lat, lon = at_xy([0.0, 1.0], [1e6, 1e6])
    grid = segments(lat, lon, fb=[0.0, 4.0], length=[10.0, 10.0]).is2grid.to_ease2(res=25000).squeeze()
    assert float(grid.mean_fb) == 2.0
    assert float(grid.std_fb) == 2.0  # the tutorial reported 4.0, the variance


def test_points_right_of_the_grid_do_not_alias_into_the_next_row():
    g = grids.ease2_grid("south", 25000).window(100, 101, 200, 201)
    x_past_right = g.x0 + 202 * 25000 + 10.0  # just right of the window's last column, row 100
    _row, _col, inside = g.cell_index(np.array([x_past_right]), np.array([g.y[0]]))
    assert not inside[0]
    flat_tutorial = (100 - 100) * 2 + (202 - 200)  # row * ncol + col, as the tutorial flattened
    assert flat_tutorial == 2  # which is (row 101, col 200): a wrong cell, now excluded


def test_the_last_cell_of_the_grid_is_kept():
    g = grids.nsidc_polar_stereo_grid("south")
    lon, lat = pyproj.Transformer.from_crs(3412, 4326, always_xy=True).transform(g.x[-1], g.y[-1])
    grid = segments([lat], [lon]).is2grid.to_grid(g, full_grid=True)
    assert int(grid.n_segments.isel(time=0, y=-1, x=-1)) == 1
    assert grid.n_segments.shape[1:] == (332, 316)


def test_the_quality_filter_is_applied():
    lat, lon = at_xy([0.0, 1.0], [1e6, 1e6])
    ds = segments(lat, lon, fb=[0.2, 0.8], beam_fb_quality_flag=np.array([1, 5], dtype=np.int8))
    grid = ds.is2grid.to_ease2(res=25000, max_quality=3).squeeze()
    assert int(grid.n_segments) == 1 and float(grid.mean_fb) == np.float32(0.2)


def test_maps_use_lambert_azimuthal_equal_area_not_equidistant(synthetic):
    import cartopy.crs as ccrs

    grid = xr.open_dataset(synthetic["south-backward"], engine="atl10").is2grid.to_ease2(res=25000)
    proj = plot.cartopy_crs(grid)
    cf = proj.to_cf()  # a cartopy projection is a pyproj CRS
    assert cf["grid_mapping_name"] == "lambert_azimuthal_equal_area"  # the tutorial's was azimuthal_equidistant
    assert cf["latitude_of_projection_origin"] == -90
    x, y = pyproj.Transformer.from_crs(4326, 6932, always_xy=True).transform(30.0, -70.0)
    px, py = proj.transform_point(30.0, -70.0, ccrs.Geodetic())
    assert abs(px - x) < 1e-3 and abs(py - y) < 1e-3
