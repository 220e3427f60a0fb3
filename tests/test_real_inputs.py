"""The files users really have: variable subsets, h5py-edited copies, h5repack'd granules; checked against h5py."""

from __future__ import annotations

import shutil
import subprocess
import warnings

import h5py
import numpy as np
import pytest
import xarray as xr

import is2grid
from is2grid import tutorial
from is2grid.products import ATL10, icesat2

from .conftest import REAL_VALID


def h5py_values(path, ds, name: str) -> np.ndarray:
    """What h5py reads for ``name`` over the beams the engine returned, fill values as NaN."""
    relpath = ATL10.segment_variables[name]
    with h5py.File(path) as f:
        parts = [f[f"{beam}/{relpath}"][:] for beam in ds.trajectory.values]
        fill = f[f"{ds.trajectory.values[0]}/{relpath}"].attrs.get("_FillValue")
    values = np.concatenate(parts).astype(np.float64)
    return np.where(values == fill, np.nan, values) if fill is not None else values


def assert_matches_h5py(path, ds) -> None:
    for name in ("beam_fb_height", "height_segment_length_seg", "latitude", "longitude"):
        np.testing.assert_array_equal(ds[name].values.astype(np.float64), h5py_values(path, ds, name), err_msg=name)


@pytest.fixture
def edited(tmp_path):
    path = tmp_path / REAL_VALID.name
    shutil.copy(REAL_VALID, path)
    return path


def test_a_variable_deleted_in_place_with_h5py_is_left_out_with_one_warning(edited):
    """h5py's `del` frees the link (h5coro still listed it, pointing at a freed header: 'download it again')."""
    with h5py.File(edited, "r+") as f:
        for beam in icesat2.BEAMS:
            if f"{beam}/freeboard_segment/beam_fb_confidence" in f:
                del f[f"{beam}/freeboard_segment/beam_fb_confidence"]
    with pytest.warns(
        is2grid.Is2gridWarning, match=r"left out 1 variable\(s\) .*: beam_fb_confidence\. .*drop_variables"
    ):
        ds = xr.open_dataset(edited, engine="atl10")
    assert "beam_fb_confidence" not in ds and "beam_fb_height" in ds
    assert_matches_h5py(edited, ds)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        xr.open_dataset(edited, engine="atl10", drop_variables=["beam_fb_confidence"]).close()
    grid = xr.open_dataset(edited, engine="atl10", drop_variables="beam_fb_confidence").is2grid.to_ease2(res=25000)
    assert int(grid.n_segments.sum()) > 0


def test_deletions_additions_and_a_deleted_group_read_as_h5py_reads_them(edited):
    """Freed heap space reused by new links: only the links the group's name index lists are read."""
    with h5py.File(edited, "r+") as f:
        for beam in icesat2.BEAMS:
            group = f.get(f"{beam}/freeboard_segment")
            if group is None:
                continue
            for name in ("beam_fb_confidence", "beam_fb_unc", "seg_dist_x"):
                if name in group:
                    del group[name]
            group.create_dataset("my_thickness", data=np.arange(3.0))
        del f["gt1l/leads"]
    with pytest.warns(is2grid.Is2gridWarning, match="left out 3 variable"):
        ds = xr.open_dataset(edited, engine="atl10")
    assert_matches_h5py(edited, ds)
    tree = xr.open_datatree(edited, engine="atl10")
    with h5py.File(edited) as f:
        for beam in tree.children:
            expected = {g for g in f[beam] if g in ATL10.beam_groups and len(f[f"{beam}/{g}"])}
            assert set(tree[beam].children) <= expected, beam
        assert "leads" not in tree["gt1l"].children


def test_a_copy_made_with_h5py_without_a_variable_opens_and_grids(tmp_path):
    """What a variable-subset order or a user's own trimmed copy looks like."""
    copy = tmp_path / REAL_VALID.name
    with h5py.File(REAL_VALID) as source, h5py.File(copy, "w") as target:
        for key, value in source.attrs.items():
            target.attrs[key] = value

        def visit(name, obj):
            if name.endswith("beam_fb_unc"):
                return
            if isinstance(obj, h5py.Group):
                group = target.require_group(name)
                group.attrs.update(obj.attrs)
            else:
                source.copy(obj, target.require_group(obj.parent.name), name=name.rsplit("/", 1)[-1])

        source.visititems(visit)
    with pytest.warns(is2grid.Is2gridWarning, match="beam_fb_unc"):
        ds = xr.open_dataset(copy, engine="atl10")
    assert_matches_h5py(copy, ds)
    with pytest.raises(is2grid.CorruptGranuleError, match=r"beam_fb_unc is missing .*asked for by name"):
        xr.open_dataset(copy, engine="atl10", variables=["beam_fb_unc"])
    grid = is2grid.workflow.grid_granules([copy], res=25000, progress=False)  # gridding never needs it
    assert grid.attrs["granules_gridded"] == 1


def test_a_coordinate_missing_is_still_an_error(edited):
    with h5py.File(edited, "r+") as f:
        del f["gt1l/freeboard_segment/latitude"]
    with pytest.raises(is2grid.GranuleError):
        xr.open_dataset(edited, engine="atl10", beams=["gt1l"]).load()


@pytest.mark.skipif(shutil.which("h5repack") is None, reason="needs h5repack (Debian: hdf5-tools); CI installs it")
@pytest.mark.parametrize("options", [[], ["-f", "GZIP=6", "-l", "CHUNK=5000"], ["-f", "SHUF", "-f", "GZIP=1"]])
def test_h5repacked_granules_read_the_same_values(tmp_path, options):
    out = tmp_path / REAL_VALID.name
    subprocess.run(["h5repack", *options, str(REAL_VALID), str(out)], check=True)
    expected = xr.open_dataset(REAL_VALID, engine="atl10").load()
    got = xr.open_dataset(out, engine="atl10").load()
    xr.testing.assert_identical(got.drop_attrs(), expected.drop_attrs())
    assert_matches_h5py(out, got)


def test_each_beam_group_of_the_tree_carries_its_own_attributes(any_granule):
    """They were gt2l's on every group: strong beams selected by attribute gave all six."""
    tree = xr.open_datatree(any_granule, engine="atl10")
    with h5py.File(any_granule) as f:
        for beam in tree.children:
            got = {k: v for k, v in tree[beam].attrs.items() if k != "beam"}
            expected = {k: v.decode() if isinstance(v, bytes) else v for k, v in f[beam].attrs.items()}
            assert got == expected, beam
    strong = [b for b in tree.children if tree[b].attrs["atlas_beam_type"] == "strong"]
    assert len(strong) == 3 or tree.attrs["sc_orient"] == 2


def test_open_mfdataset_points_to_open_granules(tmp_path):
    """It failed with an alignment error, or (combine='nested') built a broken ragged Dataset without a word."""
    paths = [tutorial.write_granule(tmp_path, n_segments=500, rgt=r) for r in (1, 2)]
    for options in ({}, {"combine": "nested", "concat_dim": "segment"}):
        with pytest.raises(is2grid.UnsupportedInputError, match=r"open_mfdataset cannot join .*is2grid.open_granules"):
            xr.open_mfdataset(paths, engine="atl10", **options)
    joined = is2grid.open_granules(paths)
    assert joined.sizes["trajectory"] == 6 and int(joined.row_size.sum()) == joined.sizes["segment"]


@pytest.mark.skipif(shutil.which("nccopy") is None, reason="needs nccopy (Debian: netcdf-bin); CI installs it")
def test_nccopy_copies_read_the_same_values_and_attributes(tmp_path):
    """nccopy stores fixed-length strings as variable-length ones, with a 16-byte fill value that broke h5coro."""
    out = tmp_path / REAL_VALID.name
    subprocess.run(["nccopy", "-k", "nc4", str(REAL_VALID), str(out)], check=True)
    with h5py.File(out) as f:
        assert h5py.check_string_dtype(f["ancillary_data/release"].dtype).length is None, "variable-length now"
    expected = xr.open_dataset(REAL_VALID, engine="atl10").load()
    got = xr.open_dataset(out, engine="atl10").load()
    xr.testing.assert_identical(got.drop_attrs(), expected.drop_attrs())
    assert_matches_h5py(out, got)
    for key in ("product_version", "product_revision", "rgt", "cycle", "sc_orient"):
        assert got.attrs[key] == expected.attrs[key], key
