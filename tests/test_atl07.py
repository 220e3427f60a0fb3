"""ATL07 through the product seam: the engine equals h5py on real granules; everything ATL10 has works on it."""

from __future__ import annotations

import pickle
import subprocess
import sys
import warnings

import h5py
import numpy as np
import pytest
import xarray as xr

import is2grid
from is2grid import tutorial, workflow
from is2grid.products import ATL07, ATL10, icesat2
from is2grid.viz import explore

from .conftest import DATA, REAL_VALID
from .helpers import assert_matches_reference
from .servers import serve_http

REAL_ATL07 = sorted((DATA / "atl07").glob("*.h5"))
EPOCH = np.datetime64("2018-01-01T00:00:00", "ns")
ALL = sorted(set(ATL07.segment_variables) - set(icesat2.COORDINATES))


@pytest.fixture(scope="module")
def synthetic07(tmp_path_factory):
    folder = tmp_path_factory.mktemp("atl07")
    return [
        tutorial.write_granule(folder, product="ATL07", hemisphere="north", rgt=rgt, n_segments=2000, sc_orient=orient)
        for rgt, orient in ((100, 0), (200, 1))
    ]


@pytest.fixture(params=["real-0", "real-1", "synthetic"])
def granule07(request, synthetic07):
    return {"real-0": REAL_ATL07[0], "real-1": REAL_ATL07[1], "synthetic": synthetic07[0]}[request.param]


def h5py_rows(path, beams, relpath):
    with h5py.File(path) as f:
        parts = [f[f"{b}/{relpath}"][:] for b in beams if f"{b}/{relpath}" in f]
    return np.concatenate(parts) if parts else np.array([])


def strong_beams(path):
    with h5py.File(path) as f:
        return icesat2.beams_for(int(f["orbit_info/sc_orient"][0]), "strong")[0]


def test_real_samples_are_backward_with_empty_strong_beams():
    """The first real sample's gt2l/gt3l hold a sea_ice_segments group with nothing but stats/ in it."""
    with h5py.File(REAL_ATL07[0]) as f:
        assert int(f["orbit_info/sc_orient"][0]) == 0
        assert "latitude" not in f["gt2l/sea_ice_segments"]
    ds = xr.open_dataset(REAL_ATL07[0], engine="atl07")
    assert list(ds.row_size.values) == [882, 0, 0]
    assert ds.attrs["product"] == "ATL07" and ds.attrs["hemisphere"] == "north"


@pytest.mark.parametrize("kind", ["strong", "all"])
def test_every_variable_equals_h5py(granule07, kind):
    beams = strong_beams(granule07) if kind == "strong" else list(icesat2.BEAMS)
    ds = xr.open_dataset(granule07, engine="atl07", beams=kind, variables=ALL)
    for name in ALL:
        relpath = ATL07.segment_variables[name]
        raw = h5py_rows(granule07, beams, relpath)
        with h5py.File(granule07) as f:
            fill = next((f[f"{b}/{relpath}"].attrs.get("_FillValue") for b in beams if f"{b}/{relpath}" in f), None)
        expected = raw if fill is None else np.where(raw == fill, np.nan, raw)
        assert ds[name].shape == raw.shape, name
        np.testing.assert_array_equal(ds[name].values, expected, err_msg=name)
    for name in ("latitude", "longitude"):
        np.testing.assert_array_equal(ds[name].values, h5py_rows(granule07, beams, f"sea_ice_segments/{name}"))
    seconds = h5py_rows(granule07, beams, "sea_ice_segments/delta_time")
    reference = EPOCH + np.round(seconds * 1e9).astype("timedelta64[ns]")
    assert np.all(np.abs(ds.delta_time.values - reference) <= np.timedelta64(1, "us"))


def test_attributes_are_the_products(granule07):
    ds = xr.open_dataset(granule07, engine="atl07")
    assert ds.height_segment_height.attrs["units"] == "meters"
    assert ds.height_segment_type.attrs["flag_meanings"].startswith("cloud_covered other")
    assert ds.attrs["title"] == ATL07.title and ds.attrs["featureType"] == "trajectory"
    assert ds.height_segment_height.encoding["_FillValue"] == np.float32(3.4028235e38)


def test_datatree_equals_h5py():
    path = REAL_ATL07[1]
    tree = xr.open_datatree(path, engine="atl07", mask_and_scale=False, decode_times=False)
    with h5py.File(path) as f:
        for beam in icesat2.BEAMS:
            node = tree[f"{beam}/sea_ice_segments"].to_dataset()
            assert node.hist_photon_heights.dims == ("segment", "hist_bin")
            assert node.ds_si_hist_bins.dims == ("hist_bin",)
            for name, relpath in (
                ("height_segment_height", "heights/height_segment_height"),
                ("hist_photon_heights", "stats/hist_photon_heights"),
                ("ds_si_hist_bins", "stats/ds_si_hist_bins"),
                ("solar_elevation", "geolocation/solar_elevation"),
            ):
                np.testing.assert_array_equal(node[name].values, f[f"{beam}/sea_ice_segments/{relpath}"][:])
            assert tree[beam].attrs["atlas_beam_type"] == f[beam].attrs["atlas_beam_type"].decode()


def test_the_wrong_engine_names_the_right_one():
    with pytest.raises(is2grid.NotATL10Error, match="engine='atl07'"):
        xr.open_dataset(REAL_ATL07[0], engine="atl10")
    with pytest.raises(is2grid.NotATL07Error, match="engine='atl10'"):
        xr.open_dataset(REAL_VALID, engine="atl07")
    assert issubclass(is2grid.NotATL07Error, is2grid.WrongProductError)


def test_guess_can_open_by_name():
    from is2grid.backend.entrypoints import ATL07BackendEntrypoint, ATL10BackendEntrypoint

    assert ATL07BackendEntrypoint().guess_can_open(str(REAL_ATL07[0]))
    assert not ATL10BackendEntrypoint().guess_can_open(str(REAL_ATL07[0]))
    assert "atl07" in xr.backends.list_engines()


def test_pickles_and_loads_lazily_with_dask(synthetic07):
    ds = xr.open_dataset(synthetic07[0], engine="atl07", chunks={})
    assert ds.height_segment_height.chunks is not None
    again = pickle.loads(pickle.dumps(ds))
    xr.testing.assert_identical(again.load(), ds.load())


def test_synthetic_granule_has_the_real_layout(synthetic07):
    """The tutorial's ATL07 has every dataset path, dtype and chunking of the real granule's schema."""
    with h5py.File(synthetic07[0]) as fake, h5py.File(REAL_ATL07[1]) as real:
        for path in (
            "gt1l/sea_ice_segments/heights/height_segment_height",
            "gt2r/sea_ice_segments/stats/hist_photon_heights",
        ):
            assert fake[path].dtype == real[path].dtype
            assert fake[path].chunks == real[path].chunks
            assert fake[path].compression == real[path].compression
        real_paths, fake_paths = set(), set()
        real["gt1l"].visit(real_paths.add)
        fake["gt1l"].visit(fake_paths.add)
        assert real_paths == fake_paths


def test_grids_against_the_brute_force_reference(synthetic07):
    ds = xr.open_dataset(synthetic07[0], engine="atl07").load()
    gridded = ds.is2grid.to_ease2(res=25000)
    assert {"mean_height", "std_height", "n_segments", "mean_seg_length"} <= set(gridded.data_vars)
    assert gridded.attrs["product"] == "ATL07" and gridded.attrs["gridded_variable"] == "height_segment_height"
    assert_matches_reference(ds, gridded, 6931, 25000, variable="height_segment_height", stem="height")


def test_real_sample_grids_a_non_default_variable_against_the_reference():
    ds = xr.open_dataset(REAL_ATL07[1], engine="atl07").load()
    gridded = ds.is2grid.to_ease2(res=6250, variable="height_segment_rms")
    assert gridded.mean_height_segment_rms.attrs["units"] == "m"
    assert_matches_reference(ds, gridded, 6931, 6250, variable="height_segment_rms", stem="height_segment_rms")


def test_open_granules_and_grid_granules_take_the_product_from_the_names(synthetic07):
    ds = workflow.open_granules(synthetic07)
    assert ds.attrs["product"] == "ATL07" and ds.granule.attrs["long_name"].startswith("ATL07")
    in_memory = workflow.grid_granules(synthetic07, res=25000, progress=False)
    by_hand = ds.load().is2grid.to_ease2(res=25000)
    for name in ("n_segments", "mean_height"):
        np.testing.assert_allclose(in_memory[name].values, by_hand[name].values, rtol=1e-12)
    with pytest.raises(is2grid.GridError, match="mix ATL07 and ATL10"):
        workflow.grid_granules([*synthetic07, REAL_VALID], res=25000, progress=False)


def test_grid_granules_on_a_real_cluster_and_into_a_store(synthetic07, tmp_path):
    from distributed import Client, LocalCluster

    expected = workflow.grid_granules(synthetic07, res=25000, progress=False)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with Client(cluster) as client:
            on_cluster = workflow.grid_granules(synthetic07, res=25000, progress=False, client=client)
    xr.testing.assert_allclose(on_cluster.drop_vars("granule"), expected.drop_vars("granule"))
    stored = workflow.grid_granules(synthetic07, res=25000, progress=False, store=tmp_path / "h.zarr")
    assert stored.attrs["product"] == "ATL07"
    np.testing.assert_array_equal(
        stored.n_segments.values, expected.n_segments.reindex_like(stored.n_segments, fill_value=0).values
    )
    with pytest.raises(is2grid.OutputError, match="variable differ"):
        workflow.grid_granules(
            synthetic07, res=25000, progress=False, store=tmp_path / "h.zarr", variable="height_segment_rms"
        )


def test_remote_read_over_http_equals_local():
    server, url = serve_http(REAL_ATL07[1].parent)
    try:
        remote = xr.open_dataset(f"{url}/{REAL_ATL07[1].name}", engine="atl07").load()
    finally:
        server.shutdown()
    local = xr.open_dataset(REAL_ATL07[1], engine="atl07").load()
    xr.testing.assert_identical(remote.drop_attrs(), local.drop_attrs())


def test_cli_grids_atl07(synthetic07, tmp_path):
    out = tmp_path / "heights.nc"
    run = subprocess.run(
        [sys.executable, "-m", "is2grid.cli", "grid", *map(str, synthetic07), "--res", "25000", "--out", str(out),
         "--product", "atl07", "--variable", "height_segment_rms"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    with xr.open_dataset(out) as result:
        assert "mean_height_segment_rms" in result and result.attrs["product"] == "ATL07"


def test_atl10_default_is_untouched_by_the_seam(synthetic):
    """ATL10's default result keeps ATL20's names and attributes exactly."""
    ds = xr.open_dataset(synthetic["south-backward"], engine="atl10")
    gridded = ds.is2grid.to_ease2(res=25000)
    assert list(gridded.data_vars) == ["n_segments", "mean_seg_length", "mean_fb", "std_fb"]
    assert gridded.mean_fb.attrs["long_name"] == "length-weighted mean sea ice freeboard"
    assert gridded.mean_fb.attrs["standard_name"] == "sea_ice_freeboard"
    assert gridded.n_segments.attrs["long_name"] == "number of freeboard segments in the cell"
    assert gridded.attrs["title"].startswith("Sea ice freeboard on EASE2_S25km")
    assert ATL10.statistics()["std"][1]["long_name"] == "length-weighted standard deviation of sea ice freeboard"


def test_no_warnings_on_real_atl07_default_open():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for path in REAL_ATL07:
            xr.open_dataset(path, engine="atl07").load()


def test_explorer_and_series_on_real_atl07():
    ds = xr.open_dataset(REAL_ATL07[1], engine="atl07")
    segments = ds.is2grid.explore()
    assert segments.is2grid["segments"] == int(ds.height_segment_height.count())
    grid = ds.is2grid.to_ease2(res=6250)
    view = grid.is2grid.explore()
    assert view.kdims[1].default == "mean_height"
    assert "sea ice surface height above the mean sea surface" in explore.html(view)
    series = grid.is2grid.timeseries((-60, 65, -45, 72))
    assert int(series.n_segments.sum()) == int(grid.n_segments.sum())
    assert series.mean_height.attrs["units"] == "m"
