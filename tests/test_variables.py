"""Any numeric segment variable gridded (variable=): named after it, exact against the brute-force reference."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings

import is2grid
from is2grid import workflow
from is2grid.grid import timeseries
from is2grid.grid.request import GridRequest
from is2grid.products import ATL07, ATL10
from is2grid.viz import explore
from is2grid.viz.explore import grid_explorer

from .helpers import assert_matches_reference
from .strategies import segment_sets


@pytest.fixture(scope="module")
def opened(synthetic):
    variables = [*ATL10.default_variables, "height_segment_height", "height_segment_confidence"]
    return xr.open_dataset(synthetic["south-backward"], engine="atl10", variables=variables).load()


def test_uncertainty_grids_against_the_reference(opened):
    gridded = opened.is2grid.to_ease2(res=25000, variable="beam_fb_unc")
    assert list(gridded.data_vars) == ["n_segments", "mean_seg_length", "mean_fb_unc", "std_fb_unc"]
    assert gridded.mean_fb_unc.attrs["long_name"] == "length-weighted mean sea ice freeboard uncertainty"
    assert gridded.mean_fb_unc.attrs["units"] == "m" and "standard_name" not in gridded.mean_fb_unc.attrs
    assert gridded.attrs["gridded_variable"] == "beam_fb_unc"
    assert_matches_reference(opened, gridded, 6932, 25000, variable="beam_fb_unc", stem="fb_unc")


def test_a_variable_of_a_subgroup_keeps_its_own_name(opened):
    gridded = opened.is2grid.to_ease2(res=25000, variable="height_segment_height", freq=None)
    assert "mean_height_segment_height" in gridded and gridded.mean_height_segment_height.dims == ("y", "x")
    stem = "height_segment_height"
    assert_matches_reference_nodays(opened, gridded, stem)


def assert_matches_reference_nodays(ds, gridded, variable):
    from .reference import brute_force, gridded_cells

    ref = brute_force(
        ds.latitude.values,
        ds.longitude.values,
        ds.delta_time.values,
        ds.height_segment_length_seg.values.astype(float),
        ds[variable].values.astype(float),
        epsg=6932,
        res=float(gridded.attrs["grid_resolution_m"]),
        day=False,
    )
    got = gridded_cells(gridded, mean=f"mean_{variable}", std=f"std_{variable}")
    assert got.keys() == ref.keys()
    for key, (count, mean_len, mean, std, *_) in ref.items():
        assert got[key][0] == count
        np.testing.assert_allclose(got[key][1:3], (mean_len, mean), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(got[key][3], std, rtol=1e-9, atol=1e-7)


def test_an_integer_flag_grids_as_numbers(opened):
    gridded = opened.is2grid.to_ease2(res=25000, variable="beam_fb_quality_flag")
    mean = gridded.mean_beam_fb_quality_flag
    assert float(mean.min()) >= 1 and float(mean.max()) <= 5
    assert int(gridded.n_segments.sum()) == int(np.isfinite(opened.beam_fb_quality_flag.where(
        np.isfinite(opened.beam_fb_quality_flag)).values).sum()) - _outside_or_bad(opened)  # fmt: skip


def _outside_or_bad(ds):
    length = ds.height_segment_length_seg.values
    return int((~(np.isfinite(length) & (length > 0)) & np.isfinite(ds.beam_fb_quality_flag.values)).sum())


@pytest.mark.parametrize(
    ("variable", "match"),
    [
        ("latitude", "a coordinate"),
        ("no_such_thing", "lacks \\['no_such_thing'\\]"),
        ("height_segment_height", "lacks \\['height_segment_height'\\].*variables="),
    ],
)
def test_bad_variables_are_named(synthetic, variable, match):
    ds = xr.open_dataset(synthetic["south-backward"], engine="atl10")
    with pytest.raises(is2grid.GridError, match=match):
        ds.is2grid.to_ease2(res=25000, variable=variable)


def test_value_range_filters_the_gridded_variable_and_fb_range_is_its_old_name(opened):
    by_value = opened.is2grid.to_ease2(res=25000, variable="beam_fb_unc", value_range=(0.0, 0.025))
    assert float(by_value.mean_fb_unc.max()) <= 0.025
    old = opened.is2grid.to_ease2(res=25000, fb_range=(0.1, 0.5))
    new = opened.is2grid.to_ease2(res=25000, value_range=(0.1, 0.5))
    xr.testing.assert_identical(old, new)
    assert "0.1 <= beam_fb_height <= 0.5" in new.attrs["filters"]
    with pytest.raises(is2grid.GridError, match="not both"):
        opened.is2grid.to_ease2(res=25000, fb_range=(0, 1), value_range=(0, 1))


def test_quality_filter_names_the_products_flag():
    request = GridRequest.create("ease2", res=25000, hemisphere="north", product="ATL07", max_quality=2)
    assert "height_segment_fit_quality_flag" in request.needed
    assert "1 <= height_segment_fit_quality_flag <= 2" in request.filters.describe()


def test_time_series_of_another_variable_are_exact_both_ways(opened):
    gridded = opened.is2grid.to_ease2(res=25000, variable="beam_fb_unc")
    from_grid = gridded.is2grid.region_timeseries("southern_ocean")
    from_segments = opened.is2grid.segments_timeseries("southern_ocean", res=25000, variable="beam_fb_unc")
    assert from_grid.mean_fb_unc.attrs["long_name"].endswith("in the region")
    for name in ("n_segments", "mean_fb_unc", "std_fb_unc", "mean_seg_length"):
        np.testing.assert_allclose(from_grid[name].values, from_segments[name].values, rtol=1e-12)
    assert from_grid.attrs["gridded_variable"] == "beam_fb_unc"


def test_collapse_time_keeps_the_variables_names(opened):
    daily = opened.is2grid.to_ease2(res=25000, variable="beam_fb_unc")
    once = opened.is2grid.to_ease2(res=25000, variable="beam_fb_unc", freq=None)
    collapsed = daily.is2grid.collapse_time()
    np.testing.assert_allclose(collapsed.mean_fb_unc.values, once.mean_fb_unc.values, rtol=1e-12, equal_nan=True)


def test_explorer_shows_the_gridded_variable(opened):
    gridded = opened.is2grid.to_ease2(res=25000, variable="beam_fb_unc")
    view = gridded.is2grid.explore()
    assert view.kdims[1].default == "mean_fb_unc"
    html = explore.html(view)
    assert "length-weighted mean sea ice freeboard uncertainty" in html
    with pytest.raises(is2grid.GridError, match="choose one of n_segments, mean_seg_length, mean_fb_unc"):
        grid_explorer(gridded, "mean_fb")


def test_lazy_dask_gridding_of_a_variable_equals_eager(synthetic):
    ds = xr.open_dataset(synthetic["south-backward"], engine="atl10", chunks={})
    options = {"res": 25000, "variable": "beam_fb_unc", "bbox": (-180, -90, 180, -50),
               "time_range": ("2019-09-15", "2019-09-15")}  # fmt: skip
    lazy = ds.is2grid.to_ease2(**options)
    assert lazy.mean_fb_unc.chunks is not None
    xr.testing.assert_allclose(lazy.compute(), ds.load().is2grid.to_ease2(**options))


def test_store_and_netcdf_carry_the_variable(synthetic, tmp_path):
    paths = [synthetic["south-backward"], synthetic["south-forward"]]
    memory = workflow.grid_granules(paths, res=25000, progress=False, variable="beam_fb_unc")
    stored = workflow.grid_granules(paths, res=25000, progress=False, variable="beam_fb_unc", store=tmp_path / "u.zarr")
    assert set(stored.data_vars) == {"n_segments", "mean_seg_length", "mean_fb_unc", "std_fb_unc"}
    np.testing.assert_allclose(
        stored.mean_fb_unc.values,
        memory.mean_fb_unc.reindex_like(stored.mean_fb_unc).values.astype(np.float32),
        rtol=1e-6,
        equal_nan=True,
    )
    written = workflow.write_netcdf(memory, tmp_path / "u.nc")
    with xr.open_dataset(written) as back:
        assert back.attrs["gridded_variable"] == "beam_fb_unc" and int(back.attrs["min_segments"]) == 1
        series = timeseries.region_timeseries(back, "southern_ocean")
        assert "mean_fb_unc" in series


def test_min_segments_is_stored_as_a_number_and_decides_the_time_series(opened):
    gridded = opened.is2grid.to_ease2(res=25000, min_segments=3)
    assert gridded.attrs["min_segments"] == 3 and "statistics need" not in gridded.attrs["filters"]
    with pytest.raises(is2grid.GridError, match="min_segments=3"):
        gridded.is2grid.region_timeseries("southern_ocean")
    gridded.attrs["filters"] = "statistics need >= 3 segments per cell"  # the text no longer decides
    gridded.attrs["min_segments"] = 1
    assert gridded.is2grid.region_timeseries("southern_ocean").sizes["time"] >= 1


def test_datasets_say_what_they_are(opened):
    from is2grid.accessor import kind_of

    gridded = opened.is2grid.to_ease2(res=25000)
    assert kind_of(opened) == "segments"
    assert kind_of(gridded) == "gridded"
    assert kind_of(gridded.is2grid.timeseries("southern_ocean")) == "series"
    # a Dataset that merely has the variables of a grid is not taken for one
    lookalike = gridded.copy()
    lookalike.attrs = {}
    assert kind_of(lookalike) == "segments"


def test_atl07_default_statistics_are_described():
    stats = ATL07.statistics()
    assert stats["mean"][1]["long_name"] == "length-weighted mean sea ice surface height above the mean sea surface"
    assert stats["count"][1]["long_name"] == "number of height segments in the cell"


@settings(max_examples=40, deadline=None)
@given(segment_sets())
def test_gridding_a_variable_equals_gridding_it_as_freeboard(data):
    """Only the values count, not the name: any variable, a derived one too, grids as if it were the freeboard."""
    other = data.beam_fb_height.values[::-1].copy()
    ds = data.assign(other=("segment", other))
    ds["other"].attrs.update(long_name="a derived quantity", units="kg m-2")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", is2grid.Is2gridWarning)  # nothing gridded: both alike
        as_freeboard = ds.assign(beam_fb_height=ds.other).is2grid.to_ease2(res=25000, freq=None)
        as_other = ds.is2grid.to_ease2(res=25000, freq=None, variable="other")
    renamed = as_other.rename(mean_other="mean_fb", std_other="std_fb")
    for name in ("n_segments", "mean_seg_length", "mean_fb", "std_fb"):
        np.testing.assert_array_equal(renamed[name].values, as_freeboard[name].values)
    assert as_other.mean_other.attrs["long_name"] == "length-weighted mean a derived quantity"
    assert as_other.mean_other.attrs["units"] == "kg m-2"


def test_a_derived_variable_must_be_numbers_on_segments(opened):
    with pytest.raises(is2grid.GridError, match=r"'beam'.*not numbers"):
        opened.is2grid.to_ease2(res=25000, variable="beam")
    with pytest.raises(is2grid.GridError, match=r"row_size.*segment"):
        opened.is2grid.to_ease2(res=25000, variable="row_size")


def test_grid_granules_refuses_a_variable_the_granules_do_not_store(synthetic):
    with pytest.raises(is2grid.GridError, match=r"ice_thickness.*not stored in ATL10 granules.*to_ease2"):
        workflow.grid_granules([synthetic["south-backward"]], res=25000, progress=False, variable="ice_thickness")
