"""The synthetic granules look like real ones to code: structure, storage, attributes, geometry."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import xarray as xr
from h5coro import filedriver, h5coro

from is2grid import tutorial

from .conftest import REAL_VALID


def storage(path, beam):
    found = {}

    def visit(name, obj):
        if name.startswith("METADATA") or (name.startswith("quality_assessment/") and False):
            return
        if isinstance(obj, h5py.Dataset):
            key = name.replace(beam, "{beam}", 1) if name.startswith(beam) else name
            plist = obj.id.get_create_plist()
            filters = [plist.get_filter(i)[0] for i in range(plist.get_nfilters())]
            found[key] = (obj.dtype.str, obj.chunks, obj.compression_opts, filters, obj.maxshape, obj.ndim)

    with h5py.File(path) as f:
        for top in ("orbit_info", "ancillary_data", beam):
            f[top].visititems(lambda n, o, t=top: visit(f"{t}/{n}", o))
    return found


def test_same_groups_names_dtypes_and_storage_as_real(south):
    real = storage(REAL_VALID, "gt2l")
    synthetic = storage(south, "gt2l")
    assert synthetic.keys() == real.keys()
    for key, value in real.items():
        assert synthetic[key] == value, key


def test_beam_and_root_attributes_stored_like_real(south):
    with h5py.File(REAL_VALID) as real, h5py.File(south) as syn:
        assert set(syn["gt2l"].attrs) == set(real["gt2l"].attrs)
        for key in real["gt2l/freeboard_segment/beam_fb_height"].attrs:
            if key != "DIMENSION_LIST":
                got = syn["gt2l/freeboard_segment/beam_fb_height"].attrs[key]
                assert type(got) is type(real["gt2l/freeboard_segment/beam_fb_height"].attrs[key]), key
        assert syn.attrs["is2grid_synthetic"] == b"true"
        assert b"SYNTHETIC" in syn.attrs["title"]
        assert syn["gt1l"].attrs["atlas_beam_type"] == b"strong" and syn["gt1r"].attrs["atlas_beam_type"] == b"weak"


def test_h5coro_fails_on_attributes_exactly_as_on_real_data(south):
    messages = []
    for path in (REAL_VALID, south):
        granule = h5coro.H5Coro(str(path), filedriver.FileDriver)
        with pytest.raises(RuntimeError) as info:
            granule.list("/", w_attr=True)
        messages.append(str(info.value))
    assert messages[0] == messages[1]
    assert "dataspace message" in messages[0]


def test_deterministic_from_seed(tmp_path):
    a = tutorial.write_granule(tmp_path / "a.h5", n_segments=500, seed=11)
    b = tutorial.write_granule(tmp_path / "b.h5", n_segments=500, seed=11)
    c = tutorial.write_granule(tmp_path / "c.h5", n_segments=500, seed=12)
    with h5py.File(a) as fa, h5py.File(b) as fb, h5py.File(c) as fc:
        names = []
        fa.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
        for name in names:
            np.testing.assert_array_equal(fa[name][()], fb[name][()], err_msg=name)
        assert not np.array_equal(
            fa["gt1l/freeboard_segment/beam_fb_height"][:], fc["gt1l/freeboard_segment/beam_fb_height"][:]
        )


def full_track(beam):
    """A whole unthinned beam track, as a full-size granule has it."""
    rng = np.random.default_rng(0)
    return tutorial._beam_track(beam, "south", 10.0, 5e7, 10**8, beam.endswith("l"), rng)


def nearest_distance(beam_a, beam_b):
    from pyproj import Geod

    a, b = full_track(beam_a), full_track(beam_b)
    idx = np.searchsorted(b["seg_dist_x"], a["seg_dist_x"]).clip(0, len(b["seg_dist_x"]) - 1)
    _, _, dist = Geod(ellps="WGS84").inv(a["longitude"], a["latitude"], b["longitude"][idx], b["latitude"][idx])
    return np.median(dist)


def test_orbit_and_beam_geometry(south):
    assert 80 <= nearest_distance("gt2l", "gt2r") <= 110
    assert 3200 <= nearest_distance("gt1l", "gt2l") <= 3400
    assert 200_000 < len(full_track("gt2l")["latitude"]) < 320_000  # about a full-size strong beam
    ds = xr.open_dataset(south, engine="atl10", beams="all", decode_times=False).load()
    one = ds.where(ds.beam == "gt2l", drop=True)
    speed = np.median(np.diff(one.seg_dist_x.values) / np.diff(one.delta_time.values))
    assert 6500 < speed < 7500
    assert np.abs(ds.latitude).max() <= 88.0
    strong = ds.height_segment_length_seg.where(ds.beam.isin(["gt1l", "gt2l", "gt3l"])).mean()
    weak = ds.height_segment_length_seg.where(ds.beam.isin(["gt1r", "gt2r", "gt3r"])).mean()
    assert 3.0 < float(weak / strong) < 5.0


def test_surface_types_fill_and_leads(south):
    ds = xr.open_dataset(south, engine="atl10").load()
    fill = float(np.isnan(ds.beam_fb_height).mean())
    assert 0.01 < fill < 0.04
    types = ds.height_segment_type.values
    assert {0, 1} <= set(np.unique(types)) and (types >= 2).any()
    leads = ds.beam_fb_height.where(types >= 2)
    ice = ds.beam_fb_height.where(types == 1)
    assert float(leads.mean()) < 0.05 < float(ice.mean())
    assert (ds.beam_fb_quality_flag.where(np.isnan(ds.beam_fb_height)).dropna("segment") == 1).all()


def test_size_parameter_scales(tmp_path):
    small = tutorial.write_granule(tmp_path, n_segments=300, seed=0, rgt=1)
    larger = tutorial.write_granule(tmp_path, n_segments=3000, seed=0, rgt=2)
    n_small = xr.open_dataset(small, engine="atl10").row_size.values
    n_large = xr.open_dataset(larger, engine="atl10").row_size.values
    assert np.all(np.abs(n_small - 300) < 15) and np.all(np.abs(n_large - 3000) < 150)


@pytest.mark.parametrize("bad", [{"hemisphere": "east"}, {"sc_orient": 3}, {"n_segments": 0}])
def test_writer_rejects_bad_parameters(tmp_path, bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        tutorial.write_granule(tmp_path, **bad)
