"""Property tests (hypothesis) of the gridding, and the no-compute-while-building guarantee."""

from __future__ import annotations

import dask
import numpy as np
import pytest
import xarray as xr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import is2grid
from is2grid.grid import grids, reduction
from is2grid.grid.request import GridRequest

from .helpers import assert_matches_reference, raise_if_dask_computes
from .reference import brute_force
from .strategies import segment_sets

# random segment sets are often all filtered out or outside the window: the warning that says so is expected
pytestmark = pytest.mark.filterwarnings("ignore:nothing was gridded:is2grid.errors.Is2gridWarning")

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
@given(segment_sets(max_size=30), st.lists(st.integers(1, 6), min_size=30, max_size=30))
def test_runs_of_segments_in_one_cell_match_the_reference(ds, repeats):
    """Segments that repeat a cell many times in a row, as along a track (summed run by run first)."""
    n = ds.sizes["segment"]
    along = ds.isel(segment=np.repeat(np.arange(n), repeats[:n]))
    wiggle = np.resize(np.float32([0.0, 0.01, -0.02, 0.03]), along.sizes["segment"])
    along = along.assign(beam_fb_height=along.beam_fb_height + wiggle)
    assert_matches_reference(along, grid_of(along), 6932, RES)


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
    for name in ("sum_length", "sum_length_h", "sum_length_h2"):
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
    from is2grid.backend.arrays import RepeatedLabelArray

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

    from is2grid.io import decode
    from is2grid.products import icesat2

    values = np.array(seconds, dtype=np.float64)
    expected = decode_cf_datetime(values.copy(), icesat2.TIME_UNITS, "standard")
    decode.seconds_to_datetime64(values, icesat2.ATLAS_EPOCH)
    np.testing.assert_array_equal(values.view("datetime64[ns]"), expected)


@pytest.mark.parametrize("seconds", [1e12, -1e12, float("inf")])
def test_engine_time_decoding_refuses_times_beyond_datetime64(seconds):
    from is2grid.io import decode
    from is2grid.products import icesat2

    with pytest.raises(ValueError, match="decode_times=False"):
        decode.seconds_to_datetime64(np.array([0.0, seconds]), icesat2.ATLAS_EPOCH)


@SETTINGS
@given(
    shape=st.tuples(st.integers(1, 3), st.integers(1, 9), st.integers(1, 9)),
    chunks=st.tuples(st.just(1), st.integers(1, 4), st.integers(1, 4)),
    dtype=st.sampled_from(["float32", "int32"]),
    data=st.data(),
)
def test_direct_chunk_writes_store_what_zarr_stores(shape, chunks, dtype, data, tmp_path_factory):
    """The store's own chunk writer gives byte-identical chunk files to zarr's, and equal arrays (edges, fill)."""
    import zarr

    from is2grid.output.zarr_chunks import ChunkWriter

    root = tmp_path_factory.mktemp("chunks")
    fill = np.nan if dtype == "float32" else 0
    made = [
        zarr.create_array(root / f"{name}.zarr", shape=shape, chunks=chunks, dtype=dtype, fill_value=fill)
        for name in ("zarr", "direct")
    ]
    writer = ChunkWriter(made[1])
    assert writer.fast
    grid = [-(-s // c) for s, c in zip(shape, chunks, strict=True)]
    chunk = tuple(data.draw(st.integers(0, n - 1)) for n in grid)
    where = tuple(slice(i * c, min(i * c + c, s)) for i, c, s in zip(chunk, chunks, shape, strict=True))
    part = tuple(w.stop - w.start for w in where)
    values = np.full(part, fill, dtype=dtype)
    cells = data.draw(st.lists(st.tuples(*(st.integers(0, n - 1) for n in part)), max_size=6))
    for cell in cells:
        values[cell] = data.draw(st.integers(-5, 5))
    for _ in range(2):  # twice: a chunk already there is replaced, and an empty one removed
        made[0][where] = values
        writer.write(chunk, values)
        key = "c/" + "/".join(map(str, chunk))
        stored = [(root / f"{name}.zarr" / key) for name in ("zarr", "direct")]
        assert stored[0].exists() == stored[1].exists()
        if stored[0].exists():
            assert stored[0].read_bytes() == stored[1].read_bytes()
        np.testing.assert_array_equal(zarr.open_array(root / "direct.zarr")[:], made[0][:])
        values = np.full(part, fill, dtype=dtype)
    assert not list((root / "direct.zarr").rglob("*.partial"))


def test_chunks_of_other_layouts_go_through_zarr(tmp_path):
    """Arrays not laid out as is2grid makes them (another codec) are written by zarr itself, correctly."""
    import zarr
    from zarr.codecs import GzipCodec

    from is2grid.output.zarr_chunks import ChunkWriter

    array = zarr.create_array(
        tmp_path / "gzip.zarr", shape=(5, 5), chunks=(2, 2), dtype="f4", fill_value=np.nan, compressors=[GzipCodec()]
    )
    writer = ChunkWriter(array)
    assert not writer.fast
    writer.write((2, 1), np.array([[1.0, 2.0]], dtype="f4"))
    expected = np.full((5, 5), np.nan, np.float32)
    expected[4, 2:4] = [1.0, 2.0]
    np.testing.assert_array_equal(array[:], expected)


def _laea_50_digits(lon: float, lat: float, pole: str) -> tuple[float, float]:
    """Snyder's polar LAEA formulas as printed, evaluated with 50 significant digits (mpmath)."""
    import mpmath

    with mpmath.workdps(50):
        a, f = mpmath.mpf(6378137), 1 / mpmath.mpf("298.257223563")
        e2 = f * (2 - f)
        e = mpmath.sqrt(e2)

        def q(s):
            return (1 - e2) * (s / (1 - e2 * s**2) - mpmath.log((1 - e * s) / (1 + e * s)) / (2 * e))

        s = mpmath.sin(mpmath.radians(mpmath.mpf(lat)))
        rho = a * mpmath.sqrt(max(0, q(1) - q(s) if pole == "north" else q(1) + q(s)))
        lam = mpmath.radians(mpmath.mpf(lon))
        return float(rho * mpmath.sin(lam)), float((-rho if pole == "north" else rho) * mpmath.cos(lam))


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["north", "south"]), st.floats(-180, 180), st.floats(-30, 90))
def test_ease2_closed_form_is_exact_to_nanometres(pole, lon, lat):
    """Against 50-digit arithmetic, from 30 degrees over the equator to the pole itself."""
    from is2grid.grid.laea import polar_laea_xy

    lat = lat if pole == "north" else -lat
    x, y = polar_laea_xy([lon], [lat], pole)
    ex, ey = _laea_50_digits(lon, lat, pole)
    assert abs(x[0] - ex) < 1e-8 and abs(y[0] - ey) < 1e-8


@settings(max_examples=100, deadline=None)
@given(
    st.sampled_from(["north", "south"]),
    st.lists(st.floats(-180, 180), min_size=1, max_size=50),
    st.lists(st.floats(-30, 88), min_size=50, max_size=50),
)
def test_ease2_closed_form_equals_proj(pole, lons, lats):
    """Within a micrometre of PROJ wherever ICESat-2 flies (PROJ itself loses digits closer to the pole)."""
    from pyproj import Transformer

    from is2grid.grid.laea import polar_laea_xy

    lon = np.array(lons)
    lat = np.array(lats[: lon.size]) * (1 if pole == "north" else -1)
    epsg = 6931 if pole == "north" else 6932
    expected = Transformer.from_crs("EPSG:4326", f"EPSG:{epsg}", always_xy=True).transform(lon, lat)
    got = polar_laea_xy(lon, lat, pole)
    np.testing.assert_allclose(got[0], expected[0], rtol=0, atol=1e-6)
    np.testing.assert_allclose(got[1], expected[1], rtol=0, atol=1e-6)


def test_ease2_closed_form_near_the_pole_and_on_bad_input():
    from is2grid.grid.laea import polar_laea_xy

    # at the pole, and 1.1 mm from it (1e-8 degree): no loss of digits, where PROJ's error is 1e-5 m
    x, y = polar_laea_xy([0.0, 0.0, 45.0], [-90.0, -90.0 + 1e-8, -90.0 + 1e-8], "south")
    assert x[0] == 0.0 and y[0] == 0.0
    np.testing.assert_allclose(np.hypot(x[1:], y[1:]), 1.1169391e-3, rtol=1e-7)  # the pole's meridian radius
    np.testing.assert_allclose((x[2], y[2]), _laea_50_digits(45.0, -90.0 + 1e-8, "south"), rtol=1e-12)
    x, y = polar_laea_xy([np.nan, 10.0, np.inf], [-70.0, np.nan, -70.0], "south")
    assert np.isnan(x).all() and np.isnan(y).all()
    with pytest.raises(ValueError, match="'north' or 'south'"):
        polar_laea_xy([0.0], [0.0], "east")


def test_to_xy_uses_the_closed_form_for_ease2_only_and_agrees_over_threads():
    rng = np.random.default_rng(3)
    lon, lat = rng.uniform(-180, 180, 250_000), rng.uniform(-88, -50, 250_000)
    one = grids.to_xy(lon, lat, "EPSG:6932", threads=1)
    two = grids.to_xy(lon, lat, "epsg:6932", threads=2)
    np.testing.assert_array_equal(one[0], two[0])
    np.testing.assert_array_equal(one[1], two[1])
    from pyproj import Transformer

    from is2grid.grid.laea import polar_laea_xy  # blocks of 32,768 points, any shape

    grid_x, grid_y = polar_laea_xy(lon[:100_000].reshape(250, 400), lat[:100_000].reshape(250, 400), "south")
    assert grid_x.shape == (250, 400)
    np.testing.assert_array_equal(grid_x.ravel(), one[0][:100_000])
    np.testing.assert_array_equal(grid_y.ravel(), one[1][:100_000])
    expected = Transformer.from_crs("EPSG:4326", "EPSG:6932", always_xy=True).transform(lon, lat)
    np.testing.assert_allclose(one, expected, rtol=0, atol=1e-6)
    ps = grids.to_xy(lon[:10], lat[:10], "EPSG:3412")
    expected = Transformer.from_crs("EPSG:4326", "EPSG:3412", always_xy=True).transform(lon[:10], lat[:10])
    np.testing.assert_array_equal(ps[0], expected[0])
