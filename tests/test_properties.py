"""Property tests (hypothesis) of the gridding, and the no-compute-while-building guarantee."""

from __future__ import annotations

import dask
import numpy as np
import pytest
import xarray as xr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import is2grid
from is2grid import grids, reduction
from is2grid.request import GridRequest

from .helpers import assert_matches_reference, raise_if_dask_computes
from .reference import brute_force
from .strategies import segment_sets

RES = 100_000.0
GRID = grids.ease2_grid("south", RES)


def grid_of(ds, **kw):
    return ds.is2grid.to_ease2(res=RES, full_grid=True, time_range=("2019-09-10", "2019-09-14"), **kw)


SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(segment_sets())
def test_counts_sum_to_valid_in_grid_points(ds):
    valid = np.isfinite(ds.beam_fb_height.values) & np.isfinite(ds.latitude.values)
    assert int(grid_of(ds).n_segments.sum()) == int(valid.sum())


@SETTINGS
@given(segment_sets())
def test_each_mean_lies_within_its_cells_range(ds):
    grid = grid_of(ds)
    ref = brute_force(ds.latitude.values, ds.longitude.values, ds.delta_time.values,
                      ds.height_segment_length_seg.values.astype(float), ds.beam_fb_height.values.astype(float),
                      epsg=6932, res=RES)  # fmt: skip
    times = grid.time.values.astype("datetime64[D]")
    for (day, row, col), (count, _, _, _, lo, hi) in ref.items():
        t = int(np.flatnonzero(times == day)[0])
        cell = grid.isel(time=t, y=row, x=col)
        assert int(cell.n_segments) == count
        eps = 1e-9 * max(1.0, abs(hi))
        assert lo - eps <= float(cell.mean_fb) <= hi + eps
        assert float(cell.std_fb) <= (hi - lo) / 2 + 1e-6


@SETTINGS
@given(segment_sets(), st.randoms(use_true_random=False))
def test_invariant_to_permutation(ds, random):
    order = list(range(ds.sizes["segment"]))
    random.shuffle(order)
    # std_fb cancels (one-pass ATL20 formula): summation order moves it by up to ~sqrt(eps) m
    xr.testing.assert_allclose(grid_of(ds), grid_of(ds.isel(segment=order)), rtol=1e-9, atol=1e-7)


@SETTINGS
@given(segment_sets(max_size=80), st.integers(1, 40))
def test_dask_equals_numpy(ds, chunk):
    eager = grid_of(ds)
    lazy = grid_of(ds.chunk({"segment": chunk}))
    assert isinstance(lazy.mean_fb.data, dask.array.Array)
    xr.testing.assert_allclose(eager, lazy.compute(), rtol=1e-9, atol=1e-7)
    xr.testing.assert_equal(eager.n_segments, lazy.n_segments.compute())


@SETTINGS
@given(segment_sets(), st.integers(0, 60))
def test_split_and_combine_equals_whole(ds, cut):
    cut = min(cut, ds.sizes["segment"])
    request = GridRequest.create(GRID, freq="1D")

    def partial(part):
        return reduction.cell_sums({n: part[n].values for n in request.needed}, request)

    whole = partial(ds)
    merged = reduction.combine(partial(ds.isel(segment=slice(0, cut))), partial(ds.isel(segment=slice(cut, None))))
    np.testing.assert_array_equal(merged.keys, whole.keys)
    np.testing.assert_array_equal(merged.count, whole.count)
    for name in ("sum_length", "sum_length_fb", "sum_length_fb2"):
        np.testing.assert_allclose(getattr(merged, name), getattr(whole, name), rtol=1e-12)


@pytest.mark.parametrize(
    "extent", [{"full_grid": True}, {"bbox": (-180, -78, -160, -74)}, {"bbox_xy": (-2e6, -2e6, 2e6, 2e6)}]
)
def test_building_the_graph_computes_nothing(synthetic, extent):
    ds = xr.open_dataset(synthetic["south-backward"], engine="atl10", chunks={})
    with raise_if_dask_computes():
        grid = ds.is2grid.to_ease2(res=25000, time_range=("2019-09-15", "2019-09-16"), **extent)
    assert isinstance(grid.n_segments.data, dask.array.Array)
    expected = xr.open_dataset(synthetic["south-backward"], engine="atl10").is2grid.to_ease2(
        res=25000, time_range=("2019-09-15", "2019-09-16"), **extent
    )
    xr.testing.assert_allclose(grid.compute(), expected, rtol=1e-9, atol=1e-7)


def test_dask_without_extent_raises_with_the_fix_instead_of_computing(synthetic):
    ds = xr.open_dataset(synthetic["south-backward"], engine="atl10", chunks={})
    with raise_if_dask_computes(), pytest.raises(is2grid.GridError, match=r"time_range=.*full_grid=True.*ds\.load\(\)"):
        ds.is2grid.to_ease2(res=25000)
    loaded = ds.load().is2grid.to_ease2(res=3125)
    assert int(loaded.n_segments.sum()) == int(ds.beam_fb_height.count())
    assert_matches_reference(ds, loaded, 6932, 3125)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(0, 6), min_size=1, max_size=6),
    st.integers(-12, 40),
    st.integers(-12, 40),
    st.sampled_from([None, 1, 2, -1]),
)
def test_beam_labels_of_any_rows_follow_the_run_lengths(counts, start, stop, step):
    """The per-segment beam label: a range of rows (repeat of run lengths) or any other key (lookup)."""
    from is2grid._array import RepeatedLabelArray

    labels = [f"gt{i}" for i in range(len(counts))]
    array = RepeatedLabelArray(labels, counts)
    expected = np.repeat(np.asarray(labels), counts)
    key = slice(start, stop, step)
    np.testing.assert_array_equal(array._getitem((key,)), expected[key])
    rows = np.arange(expected.size)[key]
    np.testing.assert_array_equal(array._getitem((rows,)), expected[rows])


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(st.floats(min_value=-6e9, max_value=6e9, allow_nan=False), st.just(float("nan"))),
        min_size=1,
        max_size=50,
    )
)
def test_engine_time_decoding_is_xarrays_to_the_nanosecond(seconds):
    from xarray.coding.times import decode_cf_datetime

    from is2grid import _decode, atl10

    values = np.array(seconds, dtype=np.float64)
    expected = decode_cf_datetime(values.copy(), atl10.TIME_UNITS, "standard")
    _decode.seconds_to_datetime64(values, atl10.ATLAS_EPOCH)
    np.testing.assert_array_equal(values.view("datetime64[ns]"), expected)


@pytest.mark.parametrize("seconds", [1e12, -1e12, float("inf")])
def test_engine_time_decoding_refuses_times_beyond_datetime64(seconds):
    from is2grid import _decode, atl10

    with pytest.raises(ValueError, match="decode_times=False"):
        _decode.seconds_to_datetime64(np.array([0.0, seconds]), atl10.ATLAS_EPOCH)
