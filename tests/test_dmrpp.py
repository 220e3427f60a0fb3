"""DMR++ sidecars: parsed from NASA's and OPeNDAP's own files, read value by value against h5py, used over real
loopback servers, and never trusted past what they can vouch for."""

from __future__ import annotations

import gzip
import shutil
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest
import xarray as xr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import is2grid
from is2grid.io import dmrpp
from is2grid.io.chunks import CHUNKED, COMPACT, DEFLATE, SHUFFLE
from is2grid.io.options import FetchOptions
from is2grid.io.reader import GranuleReader

from .conftest import DATA, REAL_GRANULES
from .dmrpp_writer import sidecar_text, write_sidecar
from .servers import RangeHandler, fake_aws_env, serve_http, start_moto

SIDECARS = DATA / "dmrpp"
NASA_ATL08 = SIDECARS / "ATL08_20200716202251_03280806_003_01.h5.dmrpp.gz"
ATL07 = sorted((DATA / "atl07").glob("*.h5"))


def _datasets(path: Path) -> list[str]:
    names: list[str] = []
    with h5py.File(path) as file:
        file.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
    return names


# ------------------------------------------------------------------ a sidecar NASA's cloud serves (ATL08 v003)
@pytest.fixture(scope="module")
def nasa():
    return dmrpp.Sidecar(gzip.decompress(NASA_ATL08.read_bytes()), "ATL08_20200716202251_03280806_003_01.h5", 2**40)


def test_nasa_sidecar_groups_and_members(nasa):
    assert {"gt1l", "gt1r", "gt2l", "gt2r", "gt3l", "gt3r", "orbit_info", "ancillary_data", "METADATA"} <= nasa.members(
        "/"
    )
    assert nasa.members("gt1r") == {"land_segments", "signal_photons"}
    assert "classed_pc_flag" in nasa.members("/gt1r/signal_photons/")
    assert nasa.members("no/such/group") == set()
    assert not nasa._parsed  # indexed, nothing parsed until asked


def test_nasa_sidecar_chunked_dataset(nasa):
    layout, index = nasa.dataset("gt1r/signal_photons/classed_pc_flag")
    # named dimension declared in its group, "deflate shuffle" as NASA's sidecars list shuffle-then-deflate
    assert (layout.layout, layout.shape, layout.chunk_shape) == (CHUNKED, (1696267,), (10000,))
    assert layout.dtype == np.dtype("i1") and layout.filters == {DEFLATE, SHUFFLE}
    assert len(index.offsets) == 170 and index.starts[:, 0].tolist() == list(range(0, 1696267, 10000))
    assert index.offsets[0] == 11346090 and index.sizes[0] == 1179
    time, _ = nasa.dataset("/gt1r/land_segments/delta_time")
    assert time.dtype == np.dtype("<f8") and time.shape == (11304,)


def test_nasa_sidecar_small_and_inline_datasets(nasa):
    orient, index = nasa.dataset("orbit_info/sc_orient")  # a chunk larger than the dataset
    assert (orient.shape, orient.chunk_shape, index.sizes.tolist()) == ((1,), (16,), [16])
    release, none = nasa.dataset("ancillary_data/release")  # compact, inline in the sidecar
    assert none is None and release.layout == COMPACT and release.dtype == np.dtype("S80")
    assert release.inline.startswith(b"003 ")
    # a compact Int32 with no byte order: asked of the HDF5 file instead, never guessed
    assert nasa.dataset("ancillary_data/end_geoseg") is dmrpp.UNSUPPORTED
    assert nasa.dataset("gt1r/nope") is None


# ------------------------------------------------------------------ OPeNDAP's own test files: sidecar + HDF5
@pytest.mark.parametrize(
    ("name", "from_file"),
    [
        ("chunked_oneD.h5", set()),
        ("chunked_shufzip_twoD.h5", {"d_4_shufzip_chunks"}),  # no byteOrder: not guessed
        ("SDS_shuf_def_fle.h5", {"IntArray"}),  # Fletcher-32: its place in the pipeline is not reliable
        ("SDS_fle_def.h5", {"IntArray"}),  # ... and the HDF5 header's reader finds it first in the pipeline
        ("SDS_fle_shuf_def.h5", {"IntArray"}),  # first, then shuffle (with a remainder), then deflate
        ("nc4_group_atomic.h5", {"dim1", "d1", "g1/dim2", "g1/d2"}),  # "byteOrde" (sic): no byte order
    ],
)
def test_opendap_sidecars_read_the_values_h5py_reads(tmp_path, name, from_file):
    for suffix in ("", ".dmrpp"):
        shutil.copy(SIDECARS / (name + suffix), tmp_path / (name + suffix))
    reader = GranuleReader(str(tmp_path / name), options=FetchOptions(dmrpp=True))
    assert isinstance(reader.handle().h5, dmrpp.SidecarHeader)
    with h5py.File(tmp_path / name) as file:
        for path in _datasets(tmp_path / name):
            got = reader.read([(path, None, None)])[0]
            np.testing.assert_array_equal(got.reshape(file[path].shape), file[path][()])
    assert reader.handle().h5.asked_file == from_file


def test_opendap_sidecar_groups(tmp_path):
    sidecar = dmrpp.Sidecar((SIDECARS / "nc4_group_atomic.h5.dmrpp").read_bytes(), "nc4_group_atomic.h5", 6244)
    assert sidecar.members("/") == {"dim1", "d1", "g1"} and sidecar.members("g1") == {"dim2", "d2"}


# ------------------------------------------------------------------ granules: identical through a sidecar
class DmrppSpy:
    """Records, per SidecarHeader made, the datasets it sent to the HDF5 header."""

    def __enter__(self):
        self.made: list[dmrpp.SidecarHeader] = []
        self.original = dmrpp.SidecarHeader.__init__
        made = self.made

        def spy(header, *args, **kwargs):
            self.original(header, *args, **kwargs)
            made.append(header)

        dmrpp.SidecarHeader.__init__ = spy
        return self

    def __exit__(self, *exc):
        dmrpp.SidecarHeader.__init__ = self.original

    def __eq__(self, other):
        return [h.asked_file for h in self.made] == other


@pytest.mark.parametrize("granule", [*REAL_GRANULES, *ATL07, "south-backward"], ids=lambda p: Path(str(p)).name)
def test_granules_open_identically_through_their_sidecar(tmp_path, synthetic, granule):
    source = synthetic[granule] if isinstance(granule, str) else granule
    path = tmp_path / source.name
    shutil.copy(source, path)
    write_sidecar(path)
    engine = "atl07" if "ATL07" in path.name else "atl10"
    plain = xr.open_dataset(path, engine=engine, storage_options={"dmrpp": False}).load()
    with DmrppSpy() as asked:
        through = xr.open_dataset(path, engine=engine, storage_options={"dmrpp": True}).load()
    xr.testing.assert_identical(through, plain)
    assert asked == [set()], "every dataset read came from the sidecar"


def test_local_files_do_not_look_for_a_sidecar_unless_asked(tmp_path, synthetic):
    path = tmp_path / synthetic["south-backward"].name
    shutil.copy(synthetic["south-backward"], path)
    write_sidecar(path)
    with DmrppSpy() as spy:
        xr.open_dataset(path, engine="atl10").load()
    assert spy.made == []


def test_required_sidecar_missing_says_so_and_leaves_no_descriptor(tmp_path, synthetic):
    import os

    path = tmp_path / synthetic["south-backward"].name
    shutil.copy(synthetic["south-backward"], path)
    with pytest.raises(is2grid.GranuleError, match=r"\.h5\.dmrpp: the DMR\+\+ sidecar .* is not there.*'dmrpp': None"):
        xr.open_dataset(path, engine="atl10", storage_options={"dmrpp": True})
    held = [f for f in os.listdir("/proc/self/fd") if os.path.realpath(f"/proc/self/fd/{f}") == str(path.resolve())]
    assert held == [], "the granule's file was left open by the failed open"


def test_dmrpp_option_is_checked(synthetic):
    with pytest.raises(ValueError, match=r"storage_options\['dmrpp'\]='yes'"):
        xr.open_dataset(synthetic["south-backward"], engine="atl10", storage_options={"dmrpp": "yes"})


# ------------------------------------------------------------------ over real servers: found, used, fewer requests
@pytest.fixture
def served(tmp_path, synthetic):
    granule = synthetic["south-backward"]
    folder = tmp_path / "served"
    folder.mkdir()
    shutil.copy(granule, folder / granule.name)
    server, url = serve_http(folder)
    yield folder, f"{url}/{granule.name}"
    server.shutdown()
    server.server_close()


def _requests_for(url: str, **options) -> tuple[xr.Dataset, list[str]]:
    RangeHandler.requests_seen.clear()
    ds = xr.open_dataset(url, engine="atl10", storage_options=options).load()
    return ds, list(RangeHandler.requests_seen)


def test_http_sidecar_found_and_used(served, synthetic):
    folder, url = served
    local = xr.open_dataset(synthetic["south-backward"], engine="atl10").load()
    without, before = _requests_for(url)  # none there: one request for it, then the HDF5 walk
    write_sidecar(folder / Path(url).name)
    with DmrppSpy() as spy:
        through, after = _requests_for(url)
    xr.testing.assert_identical(without, local)
    xr.testing.assert_identical(through, local)
    assert spy == [set()]
    assert sum(p.endswith(".dmrpp") for p in before) == 1 and sum(p.endswith(".dmrpp") for p in after) == 1
    assert len(after) < len(before) / 2, (len(after), len(before))


def test_http_sidecar_of_another_granule_is_not_used(served, synthetic):
    folder, url = served
    (folder / (Path(url).name + ".dmrpp")).write_text(sidecar_text(folder / Path(url).name, name="ATL10-02_other.h5"))
    local = xr.open_dataset(synthetic["south-backward"], engine="atl10").load()
    with pytest.warns(is2grid.Is2gridWarning, match=r"sidecar cannot be used: it describes 'ATL10-02_other.h5'"):
        ds, _ = _requests_for(url)
    xr.testing.assert_identical(ds, local)
    with pytest.raises(is2grid.GranuleError, match=r"requires cannot be used: it describes"):
        xr.open_dataset(url, engine="atl10", storage_options={"dmrpp": True})


def test_http_sidecar_cut_short_is_not_used(served, synthetic):
    folder, url = served
    text = sidecar_text(folder / Path(url).name)
    (folder / (Path(url).name + ".dmrpp")).write_text(text[: len(text) // 2])
    local = xr.open_dataset(synthetic["south-backward"], engine="atl10").load()
    with pytest.warns(is2grid.Is2gridWarning, match=r"cannot be used: it does not end with </Dataset>"):
        ds, _ = _requests_for(url)
    xr.testing.assert_identical(ds, local)


def test_sidecar_of_a_rewritten_file_gives_an_error_not_values(tmp_path, synthetic):
    """A sidecar left beside a granule rewritten since (other chunk places): a clear error, never other values."""
    original = synthetic["south-backward"]
    path = tmp_path / original.name
    with h5py.File(original) as src, h5py.File(path, "w") as dst:  # the same data, chunks laid out anew
        for name, value in src.attrs.items():
            dst.attrs[name] = value

        def copy(name, obj):
            if isinstance(obj, h5py.Group):
                dst.require_group(name).attrs.update(obj.attrs)
            else:
                dst.create_dataset(
                    name,
                    data=obj[()],
                    chunks=obj.chunks and tuple(max(1, min(7000, n)) for n in obj.shape),
                    compression=obj.compression,
                    shuffle=obj.shuffle,
                    maxshape=obj.maxshape,
                )
                dst[name].attrs.update(obj.attrs)

        src.visititems(copy)
    (tmp_path / (path.name + ".dmrpp")).write_text(sidecar_text(original))
    local = xr.open_dataset(original, engine="atl10").load()
    try:
        ds = xr.open_dataset(path, engine="atl10", storage_options={"dmrpp": True}).load()
    except is2grid.CorruptGranuleError as err:
        assert str(err).count("DMR++ sidecar (") == 1 and "'dmrpp': False" in str(err), str(err)
    else:
        xr.testing.assert_identical(ds, local)


def test_s3_sidecar_found_and_used(synthetic):
    boto3 = pytest.importorskip("boto3")
    mp = pytest.MonkeyPatch()
    fake_aws_env(mp)
    server, endpoint = start_moto()
    try:
        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-west-2")
        client.create_bucket(Bucket="sidecars", CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
        granule = synthetic["south-backward"]
        key = f"ATLAS/ATL10/006/2019/09/15/{granule.name}"
        client.upload_file(str(granule), "sidecars", key)
        credentials = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "endpoint_url": endpoint}
        local = xr.open_dataset(granule, engine="atl10").load()
        with DmrppSpy() as spy:  # no sidecar: the HDF5 header, silently
            ds = xr.open_dataset(f"s3://sidecars/{key}", engine="atl10", credentials=credentials).load()
        xr.testing.assert_identical(ds, local)
        assert spy.made == []
        client.put_object(Bucket="sidecars", Key=key + ".dmrpp", Body=sidecar_text(granule).encode())
        with DmrppSpy() as spy:
            ds = xr.open_dataset(f"s3://sidecars/{key}", engine="atl10", credentials=credentials).load()
        xr.testing.assert_identical(ds, local)
        assert spy == [set()]
    finally:
        server.stop()
        mp.undo()


# ------------------------------------------------------------------ any layout h5py writes: the values h5py reads
_dtypes = st.sampled_from(["<i1", "<u2", "<i4", "<i8", "<f4", "<f8", ">i4", ">f8"])


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    dtype=_dtypes,
    shape=st.lists(st.integers(0, 40), min_size=1, max_size=2).map(tuple),
    chunk=st.integers(1, 16),
    deflate=st.booleans(),
    shuffle=st.booleans(),
    layout=st.sampled_from(["chunked", "contiguous", "compact"]),
    seed=st.integers(0, 2**16),
)
def test_any_dataset_through_a_sidecar_reads_as_h5py(
    tmp_path_factory, dtype, shape, chunk, deflate, shuffle, layout, seed
):
    path = tmp_path_factory.mktemp("prop") / "g.h5"
    data = (np.random.default_rng(seed).normal(0, 1000, shape)).astype(dtype)
    with h5py.File(path, "w") as file:
        if layout == "chunked":
            file.create_dataset(
                "grp/x", data=data, chunks=tuple(min(chunk, max(s, 1)) for s in shape) if data.size else None,
                compression="gzip" if deflate else None, shuffle=shuffle,
            )  # fmt: skip
        elif layout == "contiguous":
            file.create_dataset("grp/x", data=data)
        else:
            space = h5py.h5s.create_simple(shape)
            plist = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
            plist.set_layout(h5py.h5d.COMPACT)
            made = h5py.h5d.create(file.require_group("grp").id, b"x", h5py.h5t.py_create(data.dtype), space, plist)
            if data.size:
                made.write(h5py.h5s.ALL, h5py.h5s.ALL, data)
    write_sidecar(path)
    reader = GranuleReader(str(path), options=FetchOptions(dmrpp=True))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = reader.read([("grp/x", None, None)])[0]
    with h5py.File(path) as file:
        np.testing.assert_array_equal(got, file["grp/x"][()])
        assert got.dtype == file["grp/x"].dtype.newbyteorder("=")
    # compact data in a sidecar has no byte order (as in NASA's): multi-byte values come from the HDF5 header
    guessed = layout == "compact" and data.dtype.itemsize > 1 and data.size
    assert reader.handle().h5.asked_file == ({"grp/x"} if guessed else set())


_WHOLE = (SIDECARS / "nc4_group_atomic.h5.dmrpp").read_bytes()


@settings(max_examples=60, deadline=None)
@given(cut=st.integers(0, len(_WHOLE.rstrip()) - 1))
def test_a_sidecar_cut_anywhere_is_refused_never_half_read(cut):
    with pytest.raises(dmrpp.SidecarError):
        dmrpp.Sidecar(_WHOLE[:cut], "nc4_group_atomic.h5", 6244)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (b"<!DOCTYPE html><html><body>Earthdata Login</body></html>", r"not a DMR\+\+ document"),
        (_WHOLE.replace(b"http://xml.opendap.org/ns/DAP/4.0#", b"urn:other"), "namespaces"),
        (_WHOLE.replace(b"</Group>", b"</Float32>", 1), "do not nest"),
    ],
)
def test_what_is_not_a_usable_sidecar_says_why(text, problem):
    with pytest.raises(dmrpp.SidecarError, match=problem):
        dmrpp.Sidecar(text, "nc4_group_atomic.h5", 6244)
