"""Engine options, laziness, pickling, dask, the entry point, and time decoding."""

from __future__ import annotations

import pickle
import warnings

import h5py
import numpy as np
import pytest
import xarray as xr

import is2grid
from is2grid.backend.entrypoints import ATL10BackendEntrypoint
from is2grid.io.reader import GranuleReader
from is2grid.products import ATL10, icesat2

from .conftest import REAL_SPARSE, REAL_VALID


def test_entry_point_registered():
    engines = xr.backends.list_engines()
    assert isinstance(engines["atl10"], ATL10BackendEntrypoint)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("ATL10-02_20190915101500_12340401_006_01.h5", True),
        ("processed_ATL10-01_20220107195849_02531401_006_01.h5", True),
        (
            "s3://nsidc-cumulus-prod-protected/ATLAS/ATL10/006/2019/09/15/ATL10-02_20190915101500_12340401_006_01.h5",
            True,
        ),
        ("https://host/ATL10-02_20190915101500_12340401_006_01.h5?token=1", True),
        ("ATL07-02_20190915101500_12340401_006_01.h5", False),
        ("freeboard.h5", False),
        ("ATL10-02_20190915101500_12340401_006_01.nc", False),
    ],
)
def test_guess_can_open_matches_names_only(name, expected, tmp_path):
    assert ATL10BackendEntrypoint().guess_can_open(name) is expected


def test_guess_can_open_does_no_io(tmp_path):
    # a path that does not exist is still judged by its name alone
    assert ATL10BackendEntrypoint().guess_can_open(tmp_path / "ATL10-02_20190915101500_12340401_006_01.h5")
    assert xr.backends.plugins.guess_engine(str(tmp_path / "ATL10-02_20190915101500_12340401_006_01.h5")) == "atl10"


@pytest.mark.parametrize(("kind", "orient"), [("south-backward", 0), ("south-forward", 1)])
def test_strong_beams_follow_sc_orient(synthetic, kind, orient):
    ds = xr.open_dataset(synthetic[kind], engine="atl10")
    assert list(ds.trajectory.values) == list(icesat2.STRONG_BEAMS[orient])
    weak = xr.open_dataset(synthetic[kind], engine="atl10", beams="weak")
    assert list(weak.trajectory.values) == list(icesat2.WEAK_BEAMS[orient])
    with h5py.File(synthetic[kind]) as f:
        for beam in ds.trajectory.values:
            assert f[beam].attrs["atlas_beam_type"] == b"strong"
    assert ds.attrs["sc_orient"] == orient


def test_transition_strong_warns_and_is_empty_with_full_schema(synthetic):
    with pytest.warns(is2grid.Is2gridWarning, match="transition"):
        ds = xr.open_dataset(synthetic["transition"], engine="atl10")
    assert ds.sizes["segment"] == 0
    normal = xr.open_dataset(synthetic["south-backward"], engine="atl10")
    assert set(ds.variables) == set(normal.variables)
    for name in normal.variables:
        assert ds[name].dtype == normal[name].dtype, name
        assert ds[name].attrs.keys() == normal[name].attrs.keys(), name
        for key, value in normal[name].attrs.items():
            np.testing.assert_equal(ds[name].attrs[key], value)


def test_transition_explicit_list_reads(synthetic):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = xr.open_dataset(synthetic["transition"], engine="atl10", beams=["gt1l", "gt2r"])
    assert ds.sizes["segment"] > 0
    assert set(np.unique(ds.beam.values)) == {"gt1l", "gt2r"}


def test_unknown_beam_is_an_error(south):
    with pytest.raises(ValueError, match=r"gt4l.*strong"):
        xr.open_dataset(south, engine="atl10", beams=["gt4l"])


def test_missing_groups_are_skipped(synthetic):
    ds = xr.open_dataset(synthetic["missing-beams"], engine="atl10")
    counts = dict(zip(ds.trajectory.values, ds.row_size.values, strict=True))
    assert counts["gt2l"] == 0 and counts["gt1l"] > 0 and counts["gt3l"] > 0
    assert "gt2l" not in set(ds.beam.values)


def test_granule_without_segments_is_empty_not_none():
    ds = xr.open_dataset(REAL_SPARSE, engine="atl10", beams=["gt2l", "gt3r"])
    assert ds.sizes["segment"] == 0
    assert set(ATL10.default_variables) <= set(ds.data_vars)
    assert ds.beam_fb_height.attrs["units"] == "meters"


def test_all_fill_beam_is_all_nan(synthetic):
    ds = xr.open_dataset(synthetic["all-fill"], engine="atl10")
    assert ds.sizes["segment"] > 0
    assert np.isnan(ds.beam_fb_height.values).all()
    real = xr.open_dataset(REAL_SPARSE, engine="atl10", beams=["gt1l"])
    assert real.sizes["segment"] == 21 and np.isnan(real.beam_fb_height.values).all()


def test_variables_selects_and_validates(south):
    ds = xr.open_dataset(south, engine="atl10", variables=["ice_conc_amsr2", "height_segment_dac"])
    assert set(ds.data_vars) == {"ice_conc_amsr2", "height_segment_dac", "row_size"}
    assert {"latitude", "longitude", "delta_time", "beam"} <= set(ds.coords)
    with pytest.raises(ValueError, match=r"no_such_thing.*Valid names.*beam_fb_height"):
        xr.open_dataset(south, engine="atl10", variables=["no_such_thing"])


@pytest.mark.parametrize("drop", ["beam_fb_unc", ["beam_fb_unc", "seg_dist_x"]])
def test_drop_variables(south, drop):
    ds = xr.open_dataset(south, engine="atl10", drop_variables=drop)
    dropped = {drop} if isinstance(drop, str) else set(drop)
    assert not dropped & set(ds.variables)
    assert "beam_fb_height" in ds


def test_schema_attributes_are_carried(south):
    ds = xr.open_dataset(south, engine="atl10")
    assert ds.beam_fb_height.attrs["units"] == "meters"
    assert ds.beam_fb_height.encoding["_FillValue"] == np.float32(3.4028235e38)
    flags = ds.height_segment_type.attrs
    assert list(flags["flag_values"]) == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, -1]
    assert flags["flag_meanings"].split()[:2] == ["cloud_covered", "other"]
    assert ds.beam_fb_quality_flag.attrs["valid_min"] == -1
    assert ds.latitude.attrs["standard_name"] == "latitude"
    for key in ("granule", "hemisphere", "rgt", "cycle", "sc_orient", "product_version"):
        assert key in ds.attrs
    assert ds.attrs["product_version"] == "006" and ds.attrs["hemisphere"] == "south"


def test_real_granule_root_attributes():
    ds = xr.open_dataset(REAL_VALID, engine="atl10")
    assert ds.attrs["rgt"] == 253 and ds.attrs["cycle"] == 14 and ds.attrs["hemisphere"] == "north"
    assert ds.attrs["granule"] == "ATL10-01_20220107195849_02531401_006_01.h5"


def test_mask_and_scale_false_keeps_fill(south):
    ds = xr.open_dataset(south, engine="atl10", mask_and_scale=False)
    assert (ds.beam_fb_height.values == np.float32(3.4028235e38)).any()
    assert ds.beam_fb_height.attrs["_FillValue"] == np.float32(3.4028235e38)


def test_decode_times_false_keeps_gps_seconds(south):
    ds = xr.open_dataset(south, engine="atl10", decode_times=False)
    assert ds.delta_time.dtype == np.float64
    assert ds.delta_time.attrs["units"] == "seconds since 2018-01-01"


# --- time ----------------------------------------------------------------------------------


def cf_decode(seconds) -> np.ndarray:
    """ATLAS seconds decoded by xarray's CF rules, as the engine's delta_time is."""
    raw = xr.Dataset({"t": ("n", np.atleast_1d(np.asarray(seconds, float)), {"units": "seconds since 2018-01-01"})})
    return xr.decode_cf(raw).t.values


def test_time_is_utc_not_gps_on_real_granule():
    """data_start_utc and start_delta_time, both stored in the granule, must agree once decoded."""
    with h5py.File(REAL_VALID) as f:
        start_utc = np.datetime64(f["ancillary_data/data_start_utc"][0].decode().rstrip("Z"), "ns")
        start_delta = f["ancillary_data/start_delta_time"][0]
        epoch = f["ancillary_data/atlas_sdp_gps_epoch"][0]
    decoded = cf_decode(start_delta)[0]
    assert abs(decoded - start_utc) < np.timedelta64(1, "us")
    tutorial_gps = np.datetime64("1980-01-06", "ns") + np.timedelta64(round((start_delta + epoch) * 1e6), "us")
    assert tutorial_gps - start_utc == np.timedelta64(18, "s")  # the NSIDC tutorial's bug


def test_engine_time_is_the_cf_decoding_of_the_stored_seconds():
    ds = xr.open_dataset(REAL_VALID, engine="atl10", beams="all")
    with h5py.File(REAL_VALID) as f:
        stored = np.concatenate([f[f"{b}/freeboard_segment/delta_time"][:] for b in ds.attrs["beams"].split()])
    assert ds.delta_time.dtype == np.dtype("datetime64[ns]")
    # to the float64's own resolution at ~1.3e8 s (30 ns): the decoding adds no error of its own
    by_hand = icesat2.ATLAS_EPOCH + np.round(stored * 1e6).astype("timedelta64[us]")
    assert np.abs(ds.delta_time.values - by_hand).max() < np.timedelta64(1, "us")
    assert ds.delta_time.encoding["units"] == "seconds since 2018-01-01"


@pytest.mark.parametrize(
    ("seconds", "utc"),
    [
        (0.0, "2018-01-01T00:00:00"),
        (86400.0 * 365, "2019-01-01T00:00:00"),
        (126822292.330265, "2022-01-07T20:24:52.330265"),
    ],
)
def test_known_instants(seconds, utc):
    assert abs(cf_decode(seconds)[0] - np.datetime64(utc, "ns")) < np.timedelta64(1, "us")
    assert icesat2.seconds_since_epoch(np.datetime64(utc)) == pytest.approx(seconds, abs=1e-6)


# --- laziness, pickling, dask ----------------------------------------------------------------


class Spy:
    def __init__(self, monkeypatch):
        self.requests: list = []
        original = GranuleReader.read

        def read(reader, requests, *args, **kwargs):
            self.requests.extend(requests)
            return original(reader, requests, *args, **kwargs)

        monkeypatch.setattr(GranuleReader, "read", read)


def test_open_reads_no_segment_data(monkeypatch, south):
    spy = Spy(monkeypatch)
    ds = xr.open_dataset(south, engine="atl10")
    assert spy.requests, "open must read orbit_info"
    # the engine decodes times itself, so xarray has no first and last value to check
    segment_reads = [r for r in spy.requests if not r[0].startswith(("orbit_info/", "ancillary_data/"))]
    assert segment_reads == []
    spy.requests.clear()
    part = ds.beam_fb_height[10:20].values
    assert part.shape == (10,)
    assert spy.requests == [("gt1l/freeboard_segment/beam_fb_height", 10, 20)]


def test_an_xarray_time_coder_decodes_as_asked(monkeypatch, south):
    # decode_times=CFDatetimeCoder(...) is xarray's to honour: the engine hands it the seconds and units
    spy = Spy(monkeypatch)
    coder = xr.coders.CFDatetimeCoder(time_unit="ns")
    ds = xr.open_dataset(south, engine="atl10", decode_times=coder)
    # xarray checks that delta_time decodes by decoding its first and last value: one row each
    segment_reads = [r for r in spy.requests if not r[0].startswith(("orbit_info/", "ancillary_data/"))]
    last_beam = ds.attrs["beams"].split()[-1]
    n_last = int(ds.row_size[-1])
    assert segment_reads == [
        ("gt1l/freeboard_segment/delta_time", 0, 1),
        (f"{last_beam}/freeboard_segment/delta_time", n_last - 1, n_last),
    ]
    engine = xr.open_dataset(south, engine="atl10")
    xr.testing.assert_identical(ds.delta_time.load(), engine.delta_time.load())


def test_slice_spanning_beams_reads_only_the_slice(monkeypatch, south):
    ds = xr.open_dataset(south, engine="atl10")
    n0 = int(ds.row_size[0])
    spy = Spy(monkeypatch)
    values = ds.latitude[n0 - 2 : n0 + 3].values
    assert spy.requests == [("gt1l/freeboard_segment/latitude", n0 - 2, n0), ("gt2l/freeboard_segment/latitude", 0, 3)]
    with h5py.File(south) as f:
        expected = np.concatenate([f["gt1l/freeboard_segment/latitude"][-2:], f["gt2l/freeboard_segment/latitude"][:3]])
    np.testing.assert_array_equal(values, expected)


def test_fancy_and_strided_indexing(south):
    ds = xr.open_dataset(south, engine="atl10")
    full = ds.load()
    lazy = xr.open_dataset(south, engine="atl10")
    idx = [5, 1, int(ds.sizes["segment"]) - 1]
    np.testing.assert_array_equal(lazy.beam_fb_height[idx].values, full.beam_fb_height.values[idx])
    np.testing.assert_array_equal(lazy.seg_dist_x[::-7].values, full.seg_dist_x.values[::-7])
    np.testing.assert_array_equal(lazy.beam.isel(segment=[0, -1]).values, full.beam.values[[0, -1]])
    assert lazy.beam_fb_height[3].values == full.beam_fb_height.values[3] or np.isnan(full.beam_fb_height.values[3])


def test_pickle_round_trip(south):
    ds = xr.open_dataset(south, engine="atl10")
    again = pickle.loads(pickle.dumps(ds))
    xr.testing.assert_identical(again.load(), ds.load())


def test_dask_chunks_follow_hdf5_chunks(south):
    ds = xr.open_dataset(south, engine="atl10", chunks={})
    counts = [int(c) for c in ds.row_size.values]
    expected = tuple(min(10000, c - s) for c in counts for s in range(0, c, 10000))
    assert ds.beam_fb_height.chunks == (expected,)
    assert ds.beam_fb_height.encoding["preferred_chunks"] == {"segment": expected}
    xr.testing.assert_identical(ds.load(), xr.open_dataset(south, engine="atl10").load())


def test_local_cluster_with_processes(synthetic):
    import distributed

    ds = xr.open_dataset(synthetic["north-forward"], engine="atl10", chunks={})
    expected = xr.open_dataset(synthetic["north-forward"], engine="atl10").load()
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with distributed.Client(cluster):
            mean = ds.beam_fb_height.mean().compute()
            per_beam = ds.beam_fb_height.groupby(ds.beam.compute()).count().compute()
    assert float(mean) == pytest.approx(float(expected.beam_fb_height.mean()), rel=1e-6)
    assert int(per_beam.sum()) == int(expected.beam_fb_height.count())


def test_netcdf_round_trip(south, tmp_path):
    ds = xr.open_dataset(south, engine="atl10")
    out = tmp_path / "segments.nc"
    ds.to_netcdf(out, engine="netcdf4")
    back = xr.open_dataset(out)
    xr.testing.assert_allclose(
        back.load().drop_vars(["beam", "delta_time"]), ds.load().drop_vars(["beam", "delta_time"])
    )
    np.testing.assert_array_equal(back.beam.values, ds.beam.values)
    # stored again as float64 GPS seconds, as in the product: exact to well below a microsecond
    assert np.abs(back.delta_time.values - ds.delta_time.values).max() < np.timedelta64(1, "us")
    assert back.row_size.attrs["sample_dimension"] == "segment"
    assert back.attrs["featureType"] == "trajectory"


def test_contiguous_datasets_read_only_the_rows(south, tmp_path, monkeypatch):
    """h5coro returns zeros for offset hyperslices of contiguous datasets; the engine reads their bytes itself."""
    import shutil

    path = tmp_path / south.name
    shutil.copy(south, path)
    with h5py.File(path, "a") as f:
        values = f["gt1l/freeboard_segment/seg_dist_x"][:]
        del f["gt1l/freeboard_segment/seg_dist_x"]
        f.create_dataset("gt1l/freeboard_segment/seg_dist_x", data=values)  # contiguous, no chunks
        assert f["gt1l/freeboard_segment/seg_dist_x"].chunks is None
    ds = xr.open_dataset(path, engine="atl10")
    spy = Spy(monkeypatch)
    np.testing.assert_array_equal(ds.seg_dist_x[5:10].values, values[5:10])
    assert spy.requests == [("gt1l/freeboard_segment/seg_dist_x", 5, 10)]


def _descriptors_on(path) -> int:
    import os

    target = os.path.realpath(path)
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.path.realpath(f"/proc/self/fd/{fd}") == target
        except OSError:
            pass
    return count


def test_concurrent_first_reads_open_the_granule_once(south):
    """Threads that ask a cold reader for its handle at once get one handle: no descriptor opened twice, or leaked."""
    import gc
    import threading

    gc.collect()
    before = _descriptors_on(south)  # other tests' datasets may hold it open
    for _ in range(20):
        reader = GranuleReader(str(south))
        start = threading.Barrier(8)
        handles = []

        def first_read(reader=reader, start=start, handles=handles):
            start.wait()
            handles.append(reader.handle())

        threads = [threading.Thread(target=first_read) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len({id(h) for h in handles}) == 1
        assert _descriptors_on(south) == before + 1
        reader.close()
        assert _descriptors_on(south) == before


@pytest.mark.filterwarnings("ignore:The specified chunks separate")
def test_loads_with_the_threaded_scheduler_leave_no_descriptor_after_close(south):
    import dask

    for _ in range(20):
        ds = xr.open_dataset(south, engine="atl10", chunks={"segment": 500})
        with dask.config.set(scheduler="threads", num_workers=8):
            ds.load()
        assert _descriptors_on(south) == 1
        ds.close()
        assert _descriptors_on(south) == 0, (
            "close() closes the granule (it did not: set_coords dropped the store's close)"
        )


def test_gridding_in_threads_leaves_the_warning_filters_alone(synthetic):
    """A Dask worker runs granules in threads: quieting the transition warning must not touch the
    process's warning filters, which warnings.catch_warnings in each thread did (it is not thread-safe)."""
    import inspect
    import warnings
    from concurrent.futures import ThreadPoolExecutor

    from is2grid import workflow
    from is2grid.grid.request import GridRequest

    def ours():
        return [f for f in warnings.filters if f[2] is is2grid.Is2gridWarning]

    request = GridRequest.create("ease2", res=25000, hemisphere="south")
    paths = [synthetic["transition"], synthetic["south-backward"]] * 8
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        before = ours()
        with ThreadPoolExecutor(8) as pool:
            sums = list(pool.map(lambda p: workflow._granule_sums(p, request, "strong", None, None), paths))
        assert ours() == before  # is2grid added no filter (xarray's own code may add others)
    source = inspect.getsource(workflow._opened)
    assert "catch_warnings" not in source and "simplefilter" not in source
    assert not [w for w in seen if "transition" in str(w.message)]
    assert all(s.n_segments == 0 for s in sums[::2]) and all(s.n_segments > 0 for s in sums[1::2])
    with pytest.warns(is2grid.Is2gridWarning, match="transition"):  # opened directly, it still warns
        xr.open_dataset(synthetic["transition"], engine="atl10")
