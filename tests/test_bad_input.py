"""Bad input gets a clear is2grid error naming the file, the problem and the fix."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import xarray as xr

import is2grid


def open_atl10(path, **kwargs):
    return xr.open_dataset(path, engine="atl10", **kwargs)


def test_missing_file(tmp_path):
    path = tmp_path / "ATL10-02_20190915101500_12340401_006_01.h5"
    with pytest.raises(is2grid.GranuleNotFoundError, match="no such file") as info:
        open_atl10(path)
    assert str(path) in str(info.value)
    assert isinstance(info.value, FileNotFoundError)


def test_not_hdf5(tmp_path):
    path = tmp_path / "ATL10-02_20190915101500_12340401_006_01.h5"
    path.write_text("<html>Earthdata Login</html>")
    with pytest.raises(is2grid.NotHDF5Error, match="not an HDF5 file") as info:
        open_atl10(path)
    assert str(path) in str(info.value)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.h5"
    path.write_bytes(b"")
    with pytest.raises(is2grid.NotHDF5Error):
        open_atl10(path)


@pytest.mark.parametrize("fraction", [0.02, 0.5, 0.9])
def test_truncated_file(south, tmp_path, fraction):
    data = south.read_bytes()
    path = tmp_path / south.name
    path.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(is2grid.GranuleError) as info:
        open_atl10(path).load()
    assert path.name in str(info.value)
    assert "download it again" in str(info.value) or "HDF5" in str(info.value)


def test_corrupted_chunk(south, tmp_path):
    path = tmp_path / south.name
    shutil.copy(south, path)
    with h5py.File(path) as f:
        offset = f["gt1l/freeboard_segment/beam_fb_height"].id.get_chunk_info(0).byte_offset
    with open(path, "r+b") as f:
        f.seek(offset + 20)
        f.write(b"\xff" * 64)
    ds = open_atl10(path)  # the structure is intact, so opening works
    with pytest.raises(is2grid.CorruptGranuleError, match="beam_fb_height") as info:
        ds.beam_fb_height.load()
    assert path.name in str(info.value)


def test_netcdf_file_is_not_atl10(tmp_path):
    path = tmp_path / "ATL10-02_20190915101500_12340401_006_01.h5"
    xr.Dataset({"a": ("x", np.arange(3))}).to_netcdf(path, engine="netcdf4")
    with pytest.raises(is2grid.NotATL10Error, match="not an ATL10 granule"):
        open_atl10(path)


def test_atl07_is_not_atl10(tmp_path):
    path = tmp_path / "ATL07-02_20190915101500_12340401_006_01.h5"
    with h5py.File(path, "w") as f:
        f["orbit_info/sc_orient"] = np.array([0], dtype="i1")
        f["ancillary_data/release"] = np.array([b"006"])
        f["gt1l/sea_ice_segments/latitude"] = np.zeros(3)
    with pytest.raises(is2grid.NotATL10Error, match="ATL07"):
        open_atl10(path)


def test_release_005_is_rejected_with_its_version(tmp_path):
    path = tmp_path / "ATL10-02_20190915101500_12340401_005_01.h5"
    with h5py.File(path, "w") as f:
        for name, value in {"sc_orient": 0, "rgt": 1, "cycle_number": 1, "orbit_number": 1}.items():
            f[f"orbit_info/{name}"] = np.array([value])
        f["ancillary_data/release"] = np.array([b"005"])
        f["ancillary_data/version"] = np.array([b"01"])
        f["gt1l/freeboard_beam_segment/beam_freeboard/beam_fb_height"] = np.zeros(3, dtype="f4")
    with pytest.raises(is2grid.UnsupportedVersionError, match="release 005"):
        open_atl10(path)


@pytest.mark.parametrize("url", ["ftp://host/ATL10-02_20190915101500_12340401_006_01.h5", "gs://b/k.h5"])
def test_unsupported_scheme(url):
    with pytest.raises(ValueError, match=r"unsupported URL scheme.*s3://.*https://"):
        open_atl10(url)


def test_errors_form_a_hierarchy():
    for cls in (
        is2grid.GranuleNotFoundError,
        is2grid.NotHDF5Error,
        is2grid.NotATL10Error,
        is2grid.UnsupportedVersionError,
        is2grid.CorruptGranuleError,
    ):
        assert issubclass(cls, is2grid.GranuleError) and issubclass(cls, is2grid.Is2gridError)
    assert issubclass(is2grid.GridError, ValueError)


@pytest.fixture(scope="module")
def three_chunks(tmp_path_factory):
    """A synthetic granule whose strong beams span three HDF5 chunks."""
    import h5py

    from is2grid import tutorial

    path = tutorial.write_granule(tmp_path_factory.mktemp("chunks"), n_segments=25_000, seed=5)
    with h5py.File(path) as f:
        assert f["gt1l/freeboard_segment/beam_fb_height"].id.get_num_chunks() >= 3
    return path


def _damage_chunk_index(source, tmp_path, change):
    """A copy of ``source`` with the first chunk B-tree node of gt1l's beam_fb_height edited by ``change``."""
    import shutil

    from is2grid.io.reader import GranuleReader

    path = tmp_path / source.name
    shutil.copy(source, path)
    reader = GranuleReader(str(path))
    name = "gt1l/freeboard_segment/beam_fb_height"
    reader.metadata([name])
    address = reader.handle().layouts[name].address
    reader.close()
    with open(path, "r+b") as f:
        f.seek(address)
        node = bytearray(f.read(24 + 65 * 24 + 64 * 8))
        change(node)
        f.seek(address)
        f.write(node)
    return path


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        # key 1's first row made equal to key 0's: two chunks claim the same rows
        (lambda node: node.__setitem__(slice(64, 72), node[32:40]), "out of order"),
        # keys 0 and 1 swapped, their chunk addresses not: h5py finds neither (fill values), this read them swapped
        (lambda node: node.__setitem__(slice(24, 88), node[56:88] + node[24:56]), "out of order"),
        # a key's row moved off the chunk grid
        (
            lambda node: node.__setitem__(
                slice(64, 72), (int.from_bytes(node[64:72], "little") + 7).to_bytes(8, "little")
            ),
            "off the chunk grid",
        ),
        # one entry fewer: rows that no chunk covers (h5coro returned zeros for them)
        (
            lambda node: node.__setitem__(slice(6, 8), (int.from_bytes(node[6:8], "little") - 1).to_bytes(2, "little")),
            "chunks where the shape needs",
        ),
    ],
)
def test_damaged_chunk_index_is_named_not_read(three_chunks, tmp_path, damage, problem):
    path = _damage_chunk_index(three_chunks, tmp_path, damage)
    with pytest.raises(is2grid.CorruptGranuleError, match=f"beam_fb_height.*{problem}"):
        xr.open_dataset(path, engine="atl10").beam_fb_height.load()


def _header_of(data: bytes, position: int) -> tuple[int, int, int]:
    """(start, covered bytes, checksum position) of the OHDR or OCHK block holding byte ``position``."""
    start = max(data.rfind(b"OHDR", 0, position), data.rfind(b"OCHK", 0, position))
    if data[start : start + 4] == b"OHDR":
        flags = data[start + 5]
        prefix = 6 + (16 if flags & 0x20 else 0) + (4 if flags & 0x10 else 0)
        width = 1 << (flags & 3)
        covered = prefix + width + int.from_bytes(data[start + prefix : start + prefix + width], "little")
    else:  # a continuation block: its length is in the continuation message that points at it
        import struct

        pointer = data.find(struct.pack("<Q", start))
        covered = int.from_bytes(data[pointer + 8 : pointer + 16], "little") - 4
    return start, covered, start + covered


def _edit_header(source, tmp_path, dataset: str, edit, *, fix_checksum: bool):
    """A copy whose ``dataset`` layout message (chunk shape) is edited, its header checksum refreshed or not."""
    import shutil
    import struct

    from is2grid.io.checksum import lookup3
    from is2grid.io.reader import GranuleReader

    path = tmp_path / source.name
    shutil.copy(source, path)
    reader = GranuleReader(str(path))
    reader.metadata([dataset])
    address = reader.handle().layouts[dataset].address
    reader.close()
    data = bytearray(path.read_bytes())
    at = data.find(struct.pack("<BBBQ", 3, 2, 2, address))  # layout message v3, chunked, 2 dimensions, B-tree
    assert at > 0
    edit(data, at + 11)  # the first chunk dimension (4 bytes)
    if fix_checksum:
        start, covered, checksum = _header_of(bytes(data), at)
        data[checksum : checksum + 4] = struct.pack("<I", lookup3(bytes(data[start : start + covered])))
    path.write_bytes(bytes(data))
    return path


def _claim_2_27_rows(data, at):
    data[at : at + 4] = (1 << 27).to_bytes(4, "little")


def test_a_damaged_object_header_fails_its_checksum_as_in_libhdf5(three_chunks, tmp_path):
    import h5py

    path = _edit_header(three_chunks, tmp_path, "gt1l/freeboard_segment/beam_fb_height", _claim_2_27_rows,
                        fix_checksum=False)  # fmt: skip
    with pytest.raises((OSError, KeyError), match="checksum"), h5py.File(path) as f:
        f["gt1l/freeboard_segment/beam_fb_height"][:10]
    with pytest.raises(is2grid.CorruptGranuleError, match=r"object header at byte \d+ fails its checksum"):
        xr.open_dataset(path, engine="atl10").load()


def test_a_chunk_shape_no_stream_can_fill_is_named_before_anything_is_allocated(south, tmp_path):
    """A header made consistent again (checksum refreshed) that claims one 2^27-row chunk (512 MB)."""
    path = _edit_header(south, tmp_path, "gt1l/freeboard_segment/beam_fb_height", _claim_2_27_rows,
                        fix_checksum=True)  # fmt: skip
    with pytest.raises(is2grid.CorruptGranuleError, match=r"would have to inflate to 536870912.*chunk shape"):
        xr.open_dataset(path, engine="atl10").beam_fb_height.load()


def test_a_damaged_superblock_fails_its_checksum(south, tmp_path):
    path = tmp_path / south.name
    data = bytearray(south.read_bytes())
    data[40] ^= 0x01  # the root group's address, inside the checksummed superblock
    path.write_bytes(bytes(data))
    with pytest.raises(is2grid.CorruptGranuleError, match="superblock fails its checksum"):
        xr.open_dataset(path, engine="atl10")


@pytest.mark.parametrize("scalar", ["orbit_info/rgt", "orbit_info/sc_orient", "orbit_info/cycle_number"])
def test_an_empty_required_scalar_is_named(south, tmp_path, scalar):
    import shutil

    import h5py

    path = tmp_path / south.name
    shutil.copy(south, path)
    with h5py.File(path, "r+") as f:
        dtype = f[scalar].dtype
        del f[scalar]
        f.create_dataset(scalar, shape=(0,), dtype=dtype)
    with pytest.raises(is2grid.CorruptGranuleError, match=rf"{scalar} holds no value \(0 elements\)"):
        xr.open_dataset(path, engine="atl10")


def test_group_and_beams_together_are_refused(south):
    with pytest.raises(ValueError, match="give one of them"):
        xr.open_dataset(south, engine="atl10", group="gt1l", beams="weak")
    assert xr.open_dataset(south, engine="atl10", group="gt1l").trajectory.values.tolist() == ["gt1l"]


def test_a_file_cut_short_while_open_is_named_not_a_crash(south, tmp_path):
    """A local file that shrinks after it was opened gives a named error, never short or stale values."""
    path = tmp_path / south.name
    path.write_bytes(south.read_bytes())
    ds = xr.open_dataset(path, engine="atl10")
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size // 2)
    with pytest.raises(is2grid.CorruptGranuleError, match="cut short while open"):
        ds.load()


CUT_WHILE_DECODING = """
import os, sys, warnings
import xarray as xr
import is2grid
from is2grid.io import sources

path, armed = sys.argv[1], [False]
original = sources.LocalFileSource.read

def read_then_cut(self, starts, stops):
    views = original(self, starts, stops)
    if armed[0]:  # the first read of data: its bytes are gone from the file before they are decoded
        armed[0] = False
        os.truncate(path, 4096)
    return views

sources.LocalFileSource.read = read_then_cut
ds = xr.open_dataset(path, engine="atl10")
armed[0] = True
try:
    values = ds.load()
    print("loaded", int(values.beam_fb_height.count()))
except is2grid.CorruptGranuleError as err:
    print("CorruptGranuleError", err)
"""


def test_a_file_cut_short_while_its_chunks_are_decoded_is_named_never_sigbus(south, tmp_path):
    """The file shrinks between the read of its chunks and their decoding (was SIGBUS: memory-mapped pages)."""
    import subprocess
    import sys

    path = tmp_path / south.name
    path.write_bytes(south.read_bytes())
    child = subprocess.run(
        [sys.executable, "-c", CUT_WHILE_DECODING, str(path)], capture_output=True, text=True, timeout=120
    )
    assert child.returncode == 0, f"the process died ({child.returncode}): {child.stderr[-1500:]}"
    assert child.stdout.startswith(("loaded", "CorruptGranuleError")), child.stdout
    if child.stdout.startswith("CorruptGranuleError"):
        assert "cut short while open" in child.stdout


@pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="reads Linux's /proc/self/smaps")
def test_a_loaded_granule_does_not_stay_in_resident_memory(south, tmp_path):
    """Nothing of a local granule stays mapped in the process once a read is done (Dask watches RSS)."""
    path = tmp_path / south.name
    path.write_bytes(south.read_bytes())
    ds = xr.open_dataset(path, engine="atl10")
    ds.load()

    def resident_kib() -> int:
        total, inside = 0, False
        for line in Path("/proc/self/smaps").read_text().splitlines():
            if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
                inside = line.endswith(str(path))
            elif inside and line.startswith("Rss:"):
                total += int(line.split()[1])
        return total

    assert resident_kib() <= 64, "the mapping holds no more than a page or so once a read is done"
    ds.close()


def test_a_time_beyond_datetime64_is_named_with_the_way_out(south, tmp_path):
    path = tmp_path / south.name
    shutil.copy(south, path)
    with h5py.File(path, "r+") as f:
        f["gt1l/freeboard_segment/delta_time"][5] = 1e12  # 31,000 years: a damaged value
    with pytest.raises(is2grid.CorruptGranuleError, match="decode_times=False") as info:
        open_atl10(path).load()
    assert path.name in str(info.value) and "delta_time" in str(info.value)
    raw = open_atl10(path, decode_times=False).delta_time.values
    assert raw[5] == 1e12
