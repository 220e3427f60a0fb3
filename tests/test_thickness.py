"""Sea ice thickness: W99 by hand from the paper's tables, the hydrostatic identities, sampling against a
brute-force nearest neighbour, uncertainties against finite differences, and the whole path to a grid."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

import is2grid
from is2grid import cli, tutorial, workflow
from is2grid.grid.grids import ease2_grid
from is2grid.thickness import hydrostatic, w99
from is2grid.thickness.sampling import sample

from .conftest import REAL_GRANULES
from .helpers import assert_matches_reference

FINITE = {"allow_nan": False, "allow_infinity": False}


# --- the climatology, by hand from Tables 1 and 2 of Warren et al. (1999) ----------------------------


def test_w99_at_the_pole_is_the_tables_first_column():
    for month in range(1, 13):
        depth, density = w99.depth_and_density(90.0, 123.0, month)  # at the pole x = y = 0, any longitude
        assert float(depth) == pytest.approx(w99.DEPTH[month][0] / 100)
        assert float(density) == pytest.approx(1000 * w99.SWE[month][0] / w99.DEPTH[month][0])


def test_w99_by_hand_off_the_pole():
    # January at 80 N 90 E: x = 0, y = 10 degrees of latitude
    depth, density = w99.depth_and_density(80.0, 90.0, 1)
    assert float(depth) == pytest.approx((28.01 - 1.1833 * 10 + 0.0243 * 100) / 100)  # 18.607 cm
    assert float(density) == pytest.approx(1000 * (8.37 - 0.3400 * 10 - 0.0005 * 100) / 18.607)
    # April at 75 N 180 E: x = -15, y = 0
    depth, density = w99.depth_and_density(75.0, 180.0, 4)
    expected_depth = 36.80 + 0.4046 * -15 + 0.0024 * 225
    expected_swe = 11.67 + 0.0841 * -15 - 0.0003 * 225
    assert float(depth) == pytest.approx(expected_depth / 100, abs=1e-9)
    assert float(density) == pytest.approx(1000 * expected_swe / expected_depth)
    # October at 85 N 45 W: x = 5 cos(-45), y = 5 sin(-45)
    x, y = 5 * np.cos(np.deg2rad(-45)), 5 * np.sin(np.deg2rad(-45))
    h0, a, b, c, d, e = 22.66, 0.3594, -1.3483, -0.1063, 0.0051, -0.0577
    depth, _ = w99.depth_and_density(85.0, -45.0, 10)
    assert float(depth) == pytest.approx((h0 + a * x + b * y + c * x * y + d * x * x + e * y * y) / 100)


def test_w99_is_nan_where_the_fit_goes_below_zero():
    depth, density = w99.depth_and_density(60.0, 60.0, 8)  # August in the Kara Sea, far outside the fit
    assert np.isnan(depth) and np.isnan(density)


# --- the hydrostatic identities and the uncertainty ---------------------------------------------------

densities = st.tuples(st.floats(1020, 1030, **FINITE), st.floats(880, 930, **FINITE), st.floats(200, 400, **FINITE))


@settings(max_examples=200, deadline=None)
@given(st.floats(0.0, 2.0, **FINITE), st.floats(0.0, 2.0, **FINITE), densities)
def test_hydrostatic_identities(fb, hs, rho):
    rho_w, rho_i, rho_s = rho
    # fb = h_s gives the zero-ice-freeboard thickness
    h, used = hydrostatic.ice_thickness(fb, fb, rho_w, rho_i, rho_s)
    assert float(h) == pytest.approx(rho_s * fb / (rho_w - rho_i), rel=1e-12, abs=1e-12)
    # snow as dense as water adds nothing beyond the freeboard it makes
    h_dense, _ = hydrostatic.ice_thickness(fb, hs, rho_w, rho_i, rho_w)
    assert float(h_dense) == pytest.approx(rho_w * fb / (rho_w - rho_i), rel=1e-12, abs=1e-12)
    # snow deeper than the freeboard is capped
    h, used = hydrostatic.ice_thickness(fb, hs, rho_w, rho_i, rho_s)
    assert float(used) == min(hs, fb)
    assert float(h) >= 0


@settings(max_examples=100, deadline=None)
@given(
    st.floats(0.05, 1.5, **FINITE),
    st.floats(0.0, 1.0, **FINITE),
    densities,
    st.tuples(*(st.floats(0.001, 0.2, **FINITE),) * 2, *(st.floats(1, 60, **FINITE),) * 2),
)
def test_uncertainty_equals_finite_differences(fb, hs_fraction, rho, sigmas):
    rho_w, rho_i, rho_s = rho
    s_fb, s_hs, s_ri, s_rs = sigmas
    hs = hs_fraction * fb * 0.999  # below the cap, where the derivatives are smooth

    def h(fb_, hs_, ri, rs):
        return float(hydrostatic.ice_thickness(fb_, hs_, rho_w, ri, rs)[0])

    step = 1e-6
    grads = [
        (h(fb + step, hs, rho_i, rho_s) - h(fb - step, hs, rho_i, rho_s)) / (2 * step),
        (h(fb, hs + step, rho_i, rho_s) - h(fb, hs - step, rho_i, rho_s)) / (2 * step),
        (h(fb, hs, rho_i + 1e-3, rho_s) - h(fb, hs, rho_i - 1e-3, rho_s)) / 2e-3,
        (h(fb, hs, rho_i, rho_s + 1e-3) - h(fb, hs, rho_i, rho_s - 1e-3)) / 2e-3,
    ]
    expected = np.sqrt(sum((g * s) ** 2 for g, s in zip(grads, (s_fb, s_hs, s_ri, s_rs), strict=True)))
    got = hydrostatic.ice_thickness_uncertainty(fb, hs, rho_w, rho_i, rho_s, s_fb, s_hs, s_ri, s_rs)
    assert float(got) == pytest.approx(expected, rel=1e-5)


# --- sampling a user's grid --------------------------------------------------------------------------


def _ease_field(seed=0, lat_min=70):
    grid = ease2_grid("north", 25000).window_for_lonlat(-180, lat_min, 180, 90)
    rng = np.random.default_rng(seed)
    field = xr.DataArray(
        rng.random((grid.nrows, grid.ncols)),
        coords={"y": grid.y, "x": grid.x, "crs": ((), 0, grid.cf_grid_mapping())},
        dims=("y", "x"),
        attrs={"grid_mapping": "crs", "units": "m"},
    )
    return grid, field


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_nearest_sampling_equals_a_brute_force_nearest_cell(seed):
    from pyproj import Transformer

    _, field = _ease_field(seed % 7)
    rng = np.random.default_rng(seed)
    lat, lon = rng.uniform(72, 89.9, 40), rng.uniform(-180, 180, 40)
    got = sample(field, lat, lon)
    to_xy = Transformer.from_crs(4326, 6931, always_xy=True)
    for k in range(lat.size):
        x, y = to_xy.transform(lon[k], lat[k])
        j = int(np.argmin(np.abs(field.x.values - x)))
        i = int(np.argmin(np.abs(field.y.values - y)))
        assert got[k] == field.values[i, j]


def test_bilinear_sampling_reproduces_a_linear_field_on_lat_lon():
    lats, lons = np.arange(60.0, 90.1, 0.5), np.arange(-180.0, 180.1, 1.0)
    field = xr.DataArray(0.01 * lats[:, None] + 0.002 * lons[None, :], coords={"lat": lats, "lon": lons},
                         dims=("lat", "lon"))  # fmt: skip
    rng = np.random.default_rng(3)
    lat, lon = rng.uniform(61, 89, 200), rng.uniform(-179, 179, 200)
    np.testing.assert_allclose(sample(field, lat, lon, method="linear"), 0.01 * lat + 0.002 * lon, rtol=1e-12)
    flipped = field.isel(lat=slice(None, None, -1))  # descending latitude, as many files store it
    np.testing.assert_allclose(sample(flipped, lat, lon, method="linear"), 0.01 * lat + 0.002 * lon, rtol=1e-12)


def test_sampling_errors_name_what_is_missing():
    _, field = _ease_field()
    with pytest.raises(is2grid.GridError, match="outside the snow field"):
        sample(field, [50.0], [0.0], what="the snow field")
    monthly = field.expand_dims(time=[np.datetime64("2019-03-01", "ns")])
    t = np.array(["2019-03-20"], dtype="datetime64[ns]")
    assert np.isfinite(sample(monthly, [85.0], [0.0], t))
    with pytest.raises(is2grid.GridError, match="outside the times"):
        sample(monthly, [85.0], [0.0], np.array(["2019-06-20"], dtype="datetime64[ns]"))
    no_crs = field.drop_vars("crs")
    no_crs.attrs.pop("grid_mapping")
    with pytest.raises(is2grid.GridError, match="names no CRS"):
        sample(no_crs, [85.0], [0.0])
    assert np.isfinite(sample(no_crs, [85.0], [0.0], crs="EPSG:6931"))


# --- the whole path ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def arctic(tmp_path_factory):
    folder = tmp_path_factory.mktemp("arctic")
    options = {"hemisphere": "north", "n_segments": 1500}
    return [
        tutorial.write_granule(folder, start=f"2019-03-{d:02d}T03:00:00", rgt=100 + d, sc_orient=d % 2, **options)
        for d in (10, 11)
    ]


@pytest.mark.parametrize("path", REAL_GRANULES, ids=["real-valid", "real-sparse"])
def test_w99_thickness_on_real_arctic_granules(path):
    ds = xr.open_dataset(path, engine="atl10").load()
    out = ds.is2grid.thickness(snow="w99")
    valid = np.isfinite(out.beam_fb_height.values)
    h = out.ice_thickness.values[valid]
    assert np.isfinite(h).all() and (h >= 0).all()
    # January 2022: W99 depths at these latitudes, capped at the freeboard
    month_depth, month_density = w99.depth_and_density(ds.latitude.values, ds.longitude.values, 1)
    np.testing.assert_allclose(out.snow_depth.values[valid], np.minimum(month_depth, out.beam_fb_height.values)[valid])
    np.testing.assert_allclose(out.snow_density.values, month_density)
    assert out.ice_thickness.attrs["units"] == "m" and "Warren et al. (1999)" in out.ice_thickness.attrs["source"]
    assert (out.ice_thickness_unc.values[valid] > 0).all()
    # the other snow options on the same real granule
    for snow, options in (("mw99", {"first_year_ice": 0.5}), ("zero_ice_freeboard", {})):
        other = ds.is2grid.thickness(snow=snow, **options)
        assert np.isfinite(other.ice_thickness.values[valid]).all()
    lats, lons = np.arange(50.0, 90.1, 0.25), np.arange(-180.0, 180.1, 0.5)
    field = xr.DataArray(np.full((lats.size, lons.size), 0.2), coords={"lat": lats, "lon": lons}, dims=("lat", "lon"))
    users = ds.is2grid.thickness(snow=field, method="linear")
    np.testing.assert_allclose(users.snow_depth.values[valid], np.minimum(0.2, out.beam_fb_height.values[valid]))


def test_thickness_grids_against_the_reference_and_makes_a_series(arctic):
    ds = workflow.open_granules(arctic).load().is2grid.thickness(snow="w99")
    gridded = ds.is2grid.to_ease2(res=25000, variable="ice_thickness")
    assert gridded.mean_ice_thickness.attrs["standard_name"] == "sea_ice_thickness"
    assert gridded.mean_ice_thickness.attrs["units"] == "m"
    assert "Warren et al. (1999)" in gridded.mean_ice_thickness.attrs["source"]
    assert "hydrostatic" in gridded.mean_ice_thickness.attrs["method"]
    assert_matches_reference(ds, gridded, 6931, 25000, variable="ice_thickness", stem="ice_thickness")
    series = gridded.is2grid.region_timeseries("central_arctic") if "central_arctic" in _regions() else None
    if series is None:
        series = gridded.is2grid.region_timeseries((-180, 70, 180, 90))
    assert "mean_ice_thickness" in series and series.mean_ice_thickness.attrs["units"] == "m"
    assert "Warren et al. (1999)" in series.mean_ice_thickness.attrs["source"]


def _regions():
    from is2grid.grid.regions import REGIONS

    return REGIONS


def test_mw99_halves_the_snow_over_first_year_ice(arctic):
    ds = xr.open_dataset(arctic[0], engine="atl10").load()
    full = ds.is2grid.thickness(snow="w99", rho_snow=300.0)
    half = ds.is2grid.thickness(snow="mw99", first_year_ice=1.0, rho_snow=300.0)
    raw, _ = w99.depth_and_density(ds.latitude.values, ds.longitude.values, 3)
    np.testing.assert_allclose(half.snow_depth.values, np.minimum(raw / 2, ds.beam_fb_height.values), equal_nan=True)
    assert np.nanmean(half.ice_thickness.values) > np.nanmean(full.ice_thickness.values)
    _, field = _ease_field(lat_min=55)
    on_grid = ds.is2grid.thickness(snow="mw99", first_year_ice=field.clip(0, 1).where(field.y < 0, 0.0))
    assert np.isfinite(on_grid.ice_thickness.values).any()
    with pytest.raises(is2grid.GridError, match="first_year_ice"):
        ds.is2grid.thickness(snow="mw99")


def test_a_users_snow_field_with_time_is_sampled(arctic):
    ds = xr.open_dataset(arctic[0], engine="atl10").load()
    _, field = _ease_field(lat_min=55)
    snow = xr.Dataset(
        {"snow_depth": (field * 0.3).expand_dims(time=[np.datetime64("2019-03-01", "ns")]),
         "snow_density": (field * 0 + 320.0).expand_dims(time=[np.datetime64("2019-03-01", "ns")])}
    )  # fmt: skip
    out = ds.is2grid.thickness(snow=snow)
    expected = sample(field * 0.3, ds.latitude.values, ds.longitude.values)
    np.testing.assert_allclose(out.snow_depth.values, np.minimum(expected, ds.beam_fb_height.values), equal_nan=True)
    assert np.allclose(out.snow_density.values, 320.0)
    with pytest.raises(is2grid.GridError, match="snow_depth"):
        ds.is2grid.thickness(snow=snow.rename(snow_depth="hs"))


def test_zero_ice_freeboard_in_the_south_and_w99_refused_there(synthetic):
    ds = xr.open_dataset(synthetic["south-backward"], engine="atl10").load()
    out = ds.is2grid.thickness(snow="zero_ice_freeboard")
    fb = ds.beam_fb_height.values.astype(np.float64)
    np.testing.assert_allclose(out.ice_thickness.values, 300.0 * fb / (1024.0 - 916.7), rtol=1e-12, equal_nan=True)
    with pytest.raises(is2grid.GridError, match=r"Arctic climatology.*southern"):
        ds.is2grid.thickness(snow="w99")


def test_atl07_heights_are_not_freeboard(tmp_path):
    heights = xr.open_dataset(tutorial.write_granule(tmp_path, product="ATL07", hemisphere="north"), engine="atl07")
    with pytest.raises(is2grid.GridError, match="total freeboard"):
        heights.is2grid.thickness()


def test_grid_granules_derives_thickness_per_granule(arctic, tmp_path):
    by_hand = (
        workflow.open_granules(arctic)
        .load()
        .is2grid.thickness(snow="w99")
        .is2grid.to_ease2(res=25000, variable="ice_thickness")
    )
    derived = workflow.grid_granules(arctic, res=25000, progress=False, variable="ice_thickness",
                                     thickness={"snow": "w99"})  # fmt: skip
    np.testing.assert_allclose(derived.mean_ice_thickness.values, by_hand.mean_ice_thickness.values, rtol=1e-12,
                               equal_nan=True)  # fmt: skip
    assert derived.mean_ice_thickness.attrs["units"] == "m"
    assert derived.mean_ice_thickness.attrs == by_hand.mean_ice_thickness.attrs
    out = tmp_path / "h.nc"
    code = cli.main(["grid", *map(str, arctic), "--res", "25000", "--out", str(out), "--variable", "ice_thickness",
                     "--snow", "w99"])  # fmt: skip
    assert code == 0
    with xr.open_dataset(out) as back:
        np.testing.assert_allclose(back.mean_ice_thickness.values, derived.mean_ice_thickness.values, rtol=1e-6,
                                   equal_nan=True)  # fmt: skip
