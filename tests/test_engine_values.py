"""Values read by the engine equal h5py's, variable by variable, on real and synthetic granules."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import xarray as xr

from is2grid.products import ATL10, icesat2

from .conftest import REAL_GRANULES

ALL_SEGMENT_VARIABLES = sorted(set(ATL10.segment_variables) - set(icesat2.COORDINATES))
EPOCH = np.datetime64("2018-01-01T00:00:00", "ns")


def h5py_rows(path, beams, relpath):
    """Independent reference: the beams' rows of one dataset, concatenated, straight from h5py."""
    with h5py.File(path) as f:
        parts = [f[f"{b}/{relpath}"][:] for b in beams if f"{b}/freeboard_segment" in f]
    return np.concatenate(parts) if parts else np.array([])


def expected_beams(path, kind="strong"):
    with h5py.File(path) as f:
        orient = int(f["orbit_info/sc_orient"][0])
    return icesat2.beams_for(orient, kind)[0]


def masked(path, relpath, raw):
    with h5py.File(path) as f:
        # the schema's fill, cross-checked against the one h5py sees in the file
        for b in icesat2.BEAMS:
            if f"{b}/{relpath}" in f:
                fill = f[f"{b}/{relpath}"].attrs.get("_FillValue")
                break
        else:
            fill = None
    if fill is None:
        return raw
    return np.where(raw == fill, np.nan, raw)


def test_masking_in_the_engine_equals_xarrays_own(any_granule):
    """The engine masks fills while decoding; the result is what xarray's mask_and_scale would give."""
    options = {"beams": "all", "variables": ALL_SEGMENT_VARIABLES}
    ours = xr.open_dataset(any_granule, engine="atl10", **options)
    theirs = xr.decode_cf(xr.open_dataset(any_granule, engine="atl10", mask_and_scale=False, **options))
    for name in ALL_SEGMENT_VARIABLES:
        assert ours[name].dtype == theirs[name].dtype, name
        np.testing.assert_array_equal(ours[name].values, theirs[name].values, err_msg=name)
        assert ours[name].encoding.get("_FillValue") == theirs[name].encoding.get("_FillValue"), name
        assert "_FillValue" not in ours[name].attrs, name


@pytest.mark.parametrize("kind", ["strong", "weak", "all"])
def test_every_variable_equals_h5py(any_granule, kind):
    beams = expected_beams(any_granule, kind)
    if not beams:  # transition granule: strong/weak undefined, so ask for the beams by name
        kind = beams = expected_beams(any_granule, "all")[:3]
    ds = xr.open_dataset(any_granule, engine="atl10", beams=kind, variables=ALL_SEGMENT_VARIABLES)
    paths = ATL10.segment_variables
    for name in ALL_SEGMENT_VARIABLES:
        raw = h5py_rows(any_granule, beams, paths[name])
        got = ds[name].values
        assert got.shape == raw.shape, name
        np.testing.assert_array_equal(got, masked(any_granule, paths[name], raw), err_msg=name)
    for name in ("latitude", "longitude"):
        np.testing.assert_array_equal(ds[name].values, h5py_rows(any_granule, beams, f"freeboard_segment/{name}"))
    seconds = h5py_rows(any_granule, beams, "freeboard_segment/delta_time")
    reference = EPOCH + np.round(seconds * 1e9).astype("timedelta64[ns]")
    assert np.all(np.abs(ds.delta_time.values - reference) <= np.timedelta64(1, "us"))


def test_default_variables_raw_values(any_granule):
    beams = expected_beams(any_granule, "all")
    ds = xr.open_dataset(any_granule, engine="atl10", beams="all", mask_and_scale=False, decode_times=False)
    paths = ATL10.segment_variables
    for name in (*ATL10.default_variables, *icesat2.COORDINATES):
        np.testing.assert_array_equal(ds[name].values, h5py_rows(any_granule, beams, paths[name]), err_msg=name)
        assert ds[name].dtype == h5py_rows(any_granule, beams, paths[name]).dtype or ds.sizes["segment"] == 0


def test_beam_coordinate_and_ragged_counts(any_granule):
    beams = expected_beams(any_granule, "all")
    ds = xr.open_dataset(any_granule, engine="atl10", beams="all")
    counts = []
    with h5py.File(any_granule) as f:
        for b in beams:
            key = f"{b}/freeboard_segment/latitude"
            counts.append(f[key].shape[0] if key in f else 0)
    assert list(ds.trajectory.values) == beams
    assert list(ds.row_size.values) == counts
    assert ds.row_size.attrs["sample_dimension"] == "segment"
    assert ds.attrs["featureType"] == "trajectory"
    np.testing.assert_array_equal(ds.beam.values, np.repeat(beams, counts))
    if ds.sizes["segment"]:
        sizes = ds.latitude.groupby(ds.beam).count()
        for b, c in zip(beams, counts, strict=True):
            if c:
                assert int(sizes.sel(beam=b)) == c


def test_datatree_every_group_equals_h5py(any_granule):
    tree = xr.open_datatree(any_granule, engine="atl10", mask_and_scale=False, decode_times=False)
    with h5py.File(any_granule) as f:
        for beam in icesat2.BEAMS:
            for group in ATL10.beam_groups:
                key = f"{beam}/{group}"
                if key not in f or not len(f[key]):
                    assert f"/{key}" not in tree.groups
                    continue
                node = tree[key].to_dataset()
                stored = {}
                f[key].visititems(
                    lambda n, o, s=stored: (
                        s.setdefault(n.rsplit("/", 1)[-1], o[:]) if isinstance(o, h5py.Dataset) else None
                    )
                )
                for name, values in stored.items():
                    np.testing.assert_array_equal(node[name].values, values, err_msg=f"{key}/{name}")


def test_datatree_groups_keep_their_own_lengths(south):
    tree = xr.open_datatree(south, engine="atl10")
    seg = tree["gt1l/freeboard_segment"].sizes["segment"]
    leads = tree["gt1l/leads"].sizes["lead"]
    sections = tree["gt1l/reference_surface_section"].sizes["section"]
    assert len({seg, leads, sections}) == 3
    assert tree["gt1l/reference_surface_section"]["beam_fb_hist_refsurf"].dims == ("section", "hist_bin")
    assert tree.attrs["hemisphere"] == "south"


def test_group_opens_one_beam(south):
    ds = xr.open_dataset(south, engine="atl10", group="gt1r")
    assert list(ds.trajectory.values) == ["gt1r"]
    np.testing.assert_array_equal(ds.latitude.values, h5py_rows(south, ["gt1r"], "freeboard_segment/latitude"))
    with pytest.raises(ValueError, match="gt1l"):
        xr.open_dataset(south, engine="atl10", group="leads")


def test_big_endian_dataset_reads_its_values(south, tmp_path):
    """A valid file may store a variable big-endian: read the numbers, not their bytes reversed."""
    import shutil

    import h5py

    path = tmp_path / south.name
    shutil.copy(south, path)
    with h5py.File(path, "a") as f:
        for beam, chunked in (("gt1l", True), ("gt2l", False)):
            name = f"{beam}/freeboard_segment/beam_fb_height"
            values = f[name][:]
            del f[name]
            options = {"chunks": (1000,), "compression": "gzip", "shuffle": True} if chunked else {}
            f.create_dataset(name, data=values.astype(">f4"), **options)
        expected = {b: f[f"{b}/freeboard_segment/beam_fb_height"][:].astype("<f4") for b in ("gt1l", "gt2l")}
    ds = xr.open_dataset(path, engine="atl10", mask_and_scale=False)
    for beam, values in expected.items():
        np.testing.assert_array_equal(ds.beam_fb_height.where(ds.beam == beam, drop=True).values, values)


@pytest.mark.parametrize("path", REAL_GRANULES, ids=lambda p: p.name)
def test_group_listings_are_what_h5py_lists(path):
    """Only links that exist are listed: every group's members equal h5py's, a missing group has none."""
    import h5py

    from is2grid.io.reader import GranuleReader

    reader = GranuleReader(str(path))
    reader.metadata(["gt1l/freeboard_segment/no_such_dataset", "gt9x/nothing"], missing_ok=True)  # failed lookups
    with h5py.File(path) as f:
        groups = ["/"]
        f.visititems(lambda name, obj: groups.append(name) if isinstance(obj, h5py.Group) else None)
        for group in groups:
            assert reader.links(group) == set(f[group].keys()), group
    reader.close()


def test_fletcher32_checksums_are_checked(south, tmp_path):
    """Chunks with a Fletcher-32 checksum read right, and a damaged one is an error, not data."""
    import shutil

    from is2grid.errors import CorruptGranuleError

    path = tmp_path / south.name
    shutil.copy(south, path)
    name = "gt1l/freeboard_segment/heights/height_segment_length_seg"
    with h5py.File(path, "a") as f:
        values = f[name][:]
        del f[name]
        f.create_dataset(name, data=values, chunks=(1000,), compression="gzip", shuffle=True, fletcher32=True)
        chunk = f[name].id.get_chunk_info(1)
    ds = xr.open_dataset(path, engine="atl10", beams=["gt1l"], mask_and_scale=False)
    np.testing.assert_array_equal(ds.height_segment_length_seg.values, values)
    with open(path, "r+b") as f:  # flip a byte of the stored checksum
        f.seek(chunk.byte_offset + chunk.size - 1)
        last = f.read(1)
        f.seek(chunk.byte_offset + chunk.size - 1)
        f.write(bytes([last[0] ^ 0xFF]))
    with pytest.raises(CorruptGranuleError, match="Fletcher-32"):
        xr.open_dataset(path, engine="atl10", beams=["gt1l"]).height_segment_length_seg.load()
