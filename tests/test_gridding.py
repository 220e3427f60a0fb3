"""Gridding against an independent brute-force reference, edge cases, options and errors."""

from __future__ import annotations

import numpy as np
import pyproj
import pytest
import xarray as xr

import is2grid
from is2grid.grid import grids

from .conftest import REAL_VALID
from .helpers import TO_LONLAT, assert_matches_reference, at_xy, segments


@pytest.mark.parametrize("res", [25000, 6250])
def test_synthetic_matches_brute_force(synthetic, res):
    ds = xr.open_dataset(synthetic["south-backward"], engine="atl10").load()
    grid = ds.is2grid.to_ease2(res=res, freq="1D")
    assert_matches_reference(ds, grid, 6932, res)


def test_north_synthetic_matches_brute_force(synthetic):
    ds = xr.open_dataset(synthetic["north-forward"], engine="atl10").load()
    assert_matches_reference(ds, ds.is2grid.to_ease2(res=12500), 6931, 12500)


def test_real_granule_matches_brute_force():
    ds = xr.open_dataset(REAL_VALID, engine="atl10", beams="all").load()
    grid = ds.is2grid.to_ease2(res=3125)
    assert int(grid.n_segments.sum()) == int(ds.beam_fb_height.count())
    assert_matches_reference(ds, grid, 6931, 3125)


def test_dask_input_equals_numpy(synthetic):
    path = synthetic["south-backward"]
    eager = xr.open_dataset(path, engine="atl10").is2grid.to_ease2(res=12500)
    window = dict(bbox_xy=(float(eager.x.min()), float(eager.y.min()), float(eager.x.max()), float(eager.y.max())),
                  time_range=(eager.time.values[0], eager.time.values[-1]))  # fmt: skip
    chunked = xr.open_dataset(path, engine="atl10", chunks={}).is2grid.to_ease2(res=12500, **window).compute()
    eager.attrs.pop("segments_gridded"), eager.attrs.pop("time_coverage_start"), eager.attrs.pop("time_coverage_end")
    xr.testing.assert_allclose(eager, chunked, rtol=1e-9, atol=1e-7)
    xr.testing.assert_equal(eager.n_segments, chunked.n_segments)


def test_result_schema_and_cf(synthetic):
    ds = xr.open_dataset(synthetic["south-backward"], engine="atl10")
    grid = ds.is2grid.to_ease2(res=6250)
    assert grid.mean_fb.dims == ("time", "y", "x")
    assert grid.n_segments.dtype == np.int32
    assert (np.diff(grid.y) < 0).all() and (np.diff(grid.x) > 0).all()
    assert grid.x.attrs["standard_name"] == "projection_x_coordinate" and grid.y.attrs["units"] == "m"
    for name in ("n_segments", "mean_seg_length", "mean_fb", "std_fb"):
        attrs = grid[name].attrs
        assert attrs["grid_mapping"] == "crs" and "units" in attrs and "cell_methods" in attrs and "long_name" in attrs
    assert pyproj.CRS.from_cf(grid.crs.attrs).to_epsg() == 6932
    assert grid.crs.attrs["grid_mapping_name"] == "lambert_azimuthal_equal_area"
    assert grid.crs.attrs["latitude_of_projection_origin"] == -90
    # cell centres are exactly those of the global grid
    g = grids.ease2_grid("south", 6250)
    np.testing.assert_array_equal(np.isin(grid.x.values, g.x), True)
    np.testing.assert_array_equal(np.isin(grid.y.values, g.y), True)
    empty = grid.n_segments == 0
    assert bool(grid.mean_fb.where(empty).isnull().all())


def test_netcdf_round_trip_keeps_crs(synthetic, tmp_path):
    grid = xr.open_dataset(synthetic["south-backward"], engine="atl10").is2grid.to_ease2(res=12500)
    grid.to_netcdf(tmp_path / "grid.nc", engine="netcdf4")
    back = xr.open_dataset(tmp_path / "grid.nc", engine="netcdf4")
    xr.testing.assert_identical(back.load(), grid)
    assert pyproj.CRS.from_cf(back.crs.attrs) == pyproj.CRS.from_epsg(6932)


def test_other_tools_recognise_the_crs(synthetic):
    grid = xr.open_dataset(synthetic["south-backward"], engine="atl10").is2grid.to_ease2(res=12500)
    assert pyproj.CRS.from_wkt(grid.crs.attrs["crs_wkt"]).to_epsg() == 6932
    assert grid.mean_fb.attrs["grid_mapping"] in grid.variables


def test_latlon_on_demand(synthetic):
    grid = xr.open_dataset(synthetic["south-backward"], engine="atl10").is2grid.to_ease2(res=25000)
    with_ll = grid.is2grid.latlon()
    assert with_ll.lat.dims == ("y", "x") and float(with_ll.lat.max()) < 0
    lon, lat = TO_LONLAT["south"].transform(float(grid.x[3]), float(grid.y[2]))
    assert float(with_ll.lat[2, 3]) == pytest.approx(lat) and float(with_ll.lon[2, 3]) == pytest.approx(lon)


# --- time bins --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("freq", "starts"),
    [
        (
            "1D",
            [
                "2019-09-01",
                "2019-09-02",
                "2019-09-03",
                "2019-09-04",
                "2019-09-05",
                "2019-09-06",
                "2019-09-07",
                "2019-09-08",
            ],
        ),
        ("7D", ["2019-08-29", "2019-09-05"]),
        ("MS", ["2019-09-01"]),
    ],
)
def test_time_bins(freq, starts):
    times = np.array(["2019-09-01T00:00:00", "2019-09-04T10:00", "2019-09-08T23:59:59"], dtype="datetime64[ns]")
    lat, lon = at_xy([0.0, 0.0, 0.0], [1e6, 1e6, 1e6])
    grid = segments(lat, lon, times).is2grid.to_ease2(res=25000, freq=freq)
    np.testing.assert_array_equal(grid.time.values, np.array(starts, dtype="datetime64[ns]"))
    assert int(grid.n_segments.sum()) == 3


def test_freq_none_gives_one_2d_grid():
    lat, lon = at_xy([0.0, 50_000.0], [1e6, 1e6])
    grid = segments(lat, lon).is2grid.to_ease2(res=25000, freq=None)
    assert grid.mean_fb.dims == ("y", "x") and int(grid.n_segments.sum()) == 2


def test_bad_freq():
    lat, lon = at_xy([0.0], [1e6])
    with pytest.raises(is2grid.GridError, match="freq='fortnightly'"):
        segments(lat, lon).is2grid.to_ease2(res=25000, freq="fortnightly")


# --- extent -----------------------------------------------------------------------------------


def test_default_window_is_the_smallest_holding_the_data():
    lat, lon = at_xy([-1_012_500.0, 987_500.0], [2_012_500.0, -512_500.0])
    grid = segments(lat, lon).is2grid.to_ease2(res=25000)
    assert grid.x.values[[0, -1]].tolist() == [-1_012_500.0, 987_500.0]
    assert grid.y.values[[0, -1]].tolist() == [2_012_500.0, -512_500.0]


def test_full_grid():
    lat, lon = at_xy([0.0], [1e6])
    grid = segments(lat, lon).is2grid.to_ease2(res=25000, full_grid=True)
    assert grid.sizes["x"] == grid.sizes["y"] == 720


def test_ross_sea_bbox_and_antimeridian():
    ross = (-180.0, -78.0, -160.0, -74.0)
    inside_lat, inside_lon = np.array([-76.0, -75.0]), np.array([-170.0, -179.9])
    across = segments([*inside_lat, -76.0, -76.0], [*inside_lon, 179.5, -150.0])
    grid = across.is2grid.to_ease2(res=6250, bbox=ross)
    assert int(grid.n_segments.sum()) == 2
    box = (170.0, -78.0, -160.0, -74.0)  # crosses the antimeridian
    grid = across.is2grid.to_ease2(res=6250, bbox=box)
    assert int(grid.n_segments.sum()) == 3
    lon2d = grid.is2grid.latlon().lon.values
    assert (lon2d > 160).any() and (lon2d < -150).any()


def test_projected_bbox_drops_outside_points_explicitly():
    # the tutorial's aliasing bug: a point right of the window's last column must not wrap into the next row
    g = grids.ease2_grid("south", 25000)
    x_last = g.x[400]
    lat, lon = at_xy([x_last, x_last + 25000.0], [g.y[300], g.y[300]])
    grid = segments(lat, lon).is2grid.to_ease2(res=25000, bbox_xy=(g.x[390] - 1, g.y[305], x_last, g.y[300]))
    assert int(grid.n_segments.sum()) == 1
    assert int(grid.n_segments.isel(x=0, y=1).sum()) == 0


# --- edge cases -------------------------------------------------------------------------------


def test_points_exactly_on_cell_edges_go_right_and_down():
    g = grids.ease2_grid("south", 25000)
    row, col, inside = g.cell_index(np.array([-9e6 + 25000 * 10, 9e6, -9e6]), np.array([9e6 - 25000 * 7, 0.0, -9e6]))
    assert (row[0], col[0]) == (7, 10)
    assert not inside[1] and not inside[2]  # the right and bottom borders belong to no cell
    row, col, inside = g.cell_index(np.array([9e6 - 1e-6]), np.array([-9e6 + 1e-6]))
    assert inside[0] and (row[0], col[0]) == (719, 719)  # the last cell is kept


def test_window_border_cells_are_kept():
    g = grids.ease2_grid("south", 25000)
    window = g.window(300, 310, 400, 420)
    x = np.array([g.x0 + 400 * 25000, g.x0 + 421 * 25000 - 1e-3, g.x0 + 421 * 25000])
    y = np.full(3, g.y0 - 310 * 25000 - 1.0)
    _row, _col, inside = window.cell_index(x, y)
    assert inside.tolist() == [True, True, False]


def test_the_pole():
    grid = segments([-90.0], [0.0]).is2grid.to_ease2(res=25000)
    assert grid.x.values.tolist() == [12500.0] and grid.y.values.tolist() == [-12500.0]


def test_antimeridian_longitudes_are_the_same_place():
    grid = segments([-75.0, -75.0], [180.0, -180.0]).is2grid.to_ease2(res=6250)
    assert int(grid.n_segments.max()) == 2


def test_empty_input_gives_full_schema():
    grid = segments([], []).is2grid.to_ease2(res=6250)
    assert set(grid.data_vars) == {"n_segments", "mean_seg_length", "mean_fb", "std_fb"}
    assert grid.sizes["time"] == 0 and grid.n_segments.dtype == np.int32
    assert grid.crs.attrs["grid_mapping_name"] == "lambert_azimuthal_equal_area"


def test_all_fill_input_is_empty_grid(synthetic):
    ds = xr.open_dataset(synthetic["all-fill"], engine="atl10")
    with pytest.warns(is2grid.Is2gridWarning, match=r"nothing was gridded: none of the \d+ segments passed"):
        grid = ds.is2grid.to_ease2(res=25000, time_range=("2019-09-15", "2019-09-15"))
    assert int(grid.n_segments.sum()) == 0 and grid.sizes["time"] == 1 and bool(grid.mean_fb.isnull().all())


def test_nan_coordinates_and_fill_are_dropped():
    ds = segments([-75.0, np.nan, -75.0, -75.0], [10.0, 10.0, np.nan, 10.0], fb=[0.2, 0.3, 0.4, np.nan])
    assert int(ds.is2grid.to_ease2(res=6250).n_segments.sum()) == 1
    raw = segments([-75.0, -75.0], [10.0, 10.0], fb=[0.2, 3.4028235e38])
    assert int(raw.is2grid.to_ease2(res=6250).n_segments.sum()) == 1


def test_single_point():
    grid = segments([-70.0], [45.0], fb=[0.25], length=[12.0]).is2grid.to_ease2(res=6250)
    cell = grid.squeeze()
    assert grid.n_segments.shape == (1, 1, 1) and int(cell.n_segments) == 1
    assert float(cell.mean_fb) == pytest.approx(0.25) and float(cell.std_fb) == 0.0
    assert float(cell.mean_seg_length) == pytest.approx(12.0)


# --- filters ----------------------------------------------------------------------------------


def test_filters():
    lat, lon = at_xy(np.zeros(5), np.full(5, 1e6))
    ds = segments(
        lat,
        lon,
        fb=[0.1, 0.2, 0.3, 5.0, 0.01],
        height_segment_type=np.array([1, 1, 1, 1, 3], dtype=np.int8),
        beam_fb_quality_flag=np.array([1, 2, 4, 1, 1], dtype=np.int8),
    )
    count = lambda **kw: int(ds.is2grid.to_ease2(res=25000, **kw).n_segments.sum())  # noqa: E731
    assert count() == 5
    assert count(segment_types=(1,)) == 4
    assert count(max_quality=2) == 4
    assert count(fb_range=(0.0, 1.0)) == 4
    assert count(segment_types=[1], max_quality=2, fb_range=(0, 1)) == 2
    few = ds.is2grid.to_ease2(res=25000, min_segments=6)
    assert int(few.n_segments.sum()) == 5 and bool(few.mean_fb.isnull().all())


def test_weak_beams_count_only_if_present(synthetic):
    strong = xr.open_dataset(synthetic["south-backward"], engine="atl10")
    both = xr.open_dataset(synthetic["south-backward"], engine="atl10", beams="all")
    assert int(both.is2grid.to_ease2(res=25000).n_segments.sum()) > int(
        strong.is2grid.to_ease2(res=25000).n_segments.sum()
    )


# --- errors -----------------------------------------------------------------------------------


def test_non_standard_resolution_lists_the_standard_ones():
    with pytest.raises(is2grid.GridError, match=r"res=7000.*6250.*1562.5"):
        segments([-75.0], [0.0]).is2grid.to_ease2(res=7000)


def test_missing_variable_is_named():
    ds = segments([-75.0], [0.0]).drop_vars("height_segment_length_seg")
    with pytest.raises(is2grid.GridError, match="height_segment_length_seg"):
        ds.is2grid.to_ease2(res=6250)
    with pytest.raises(is2grid.GridError, match="height_segment_type"):
        segments([-75.0], [0.0]).is2grid.to_ease2(res=6250, segment_types=(1,))


def test_mixed_hemispheres_is_an_error():
    ds = segments([-75.0, 75.0], [0.0, 0.0]).drop_attrs()
    with pytest.raises(is2grid.GridError, match="both hemispheres"):
        ds.is2grid.to_ease2(res=6250)
    with pytest.raises(is2grid.GridError, match="both hemispheres"):
        segments([-75.0, 75.0], [0.0, 0.0], hemisphere="south").is2grid.to_ease2(res=6250)


def test_hemisphere_override_and_inference():
    north = segments([75.0], [0.0]).drop_attrs()
    assert north.is2grid.hemisphere() == "north"
    assert pyproj.CRS.from_cf(north.is2grid.to_ease2(res=25000).crs.attrs).to_epsg() == 6931


def test_polar_stereographic_atl20_grid(synthetic):
    ds = xr.open_dataset(synthetic["north-forward"], engine="atl10")
    grid = ds.is2grid.to_grid("nsidc_ps25", full_grid=True)
    assert (grid.sizes["y"], grid.sizes["x"]) == (448, 304)
    assert pyproj.CRS.from_cf(grid.crs.attrs).to_epsg() == 3411
    south = grids.nsidc_polar_stereo_grid("south")
    assert south.shape == (332, 316) and south.crs == "EPSG:3412"
    assert int(grid.n_segments.sum()) == int(ds.beam_fb_height.count())


def test_bad_bbox():
    with pytest.raises(is2grid.GridError, match="bbox"):
        segments([-75.0], [0.0]).is2grid.to_ease2(res=6250, bbox=(-180, -74, -160, -78))
    with pytest.raises(is2grid.GridError, match="at most one"):
        segments([-75.0], [0.0]).is2grid.to_ease2(res=6250, bbox=(-180, -78, -160, -74), full_grid=True)
