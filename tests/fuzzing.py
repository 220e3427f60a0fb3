"""Mutations of granules and the judge of what the engine makes of them (run in worker processes).

A verdict is "ok: ..." when the engine returned the original values, the values h5py reads from the
mutated file, or raised/warned with one of is2grid's named errors; anything else is a finding.
"""

from __future__ import annotations

import os
import random
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np

VARIABLES = ["beam_fb_height", "height_segment_length_seg", "height_segment_type"]
COORDS = ["latitude", "longitude", "delta_time"]

_REFERENCE: dict[str, dict[str, np.ndarray]] = {}


def structure_ranges(path: Path) -> list[tuple[int, int]]:
    """Byte ranges of the file that are not chunk data (headers, B-trees, heaps): where damage is subtle."""
    import h5py

    data = []
    with h5py.File(path) as f:

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset) and obj.chunks is not None:
                for i in range(obj.id.get_num_chunks()):
                    info = obj.id.get_chunk_info(i)
                    data.append((info.byte_offset, info.byte_offset + info.size))

        f.visititems(visit)
    data.sort()
    gaps, at = [], 0
    for a, b in data:
        if a > at:
            gaps.append((at, a))
        at = max(at, b)
    size = path.stat().st_size
    if at < size:
        gaps.append((at, size))
    return gaps


def btree_ranges(path: Path) -> list[tuple[int, int]]:
    """Where the chunk B-tree nodes of the read variables are: their keys say which rows each chunk holds."""
    from is2grid.io.reader import GranuleReader
    from is2grid.products import ATL10, icesat2

    reader = GranuleReader(str(path))
    table = ATL10.segment_variables
    paths = [f"{b}/{table[n]}" for b in icesat2.BEAMS for n in (*VARIABLES, *COORDS)]
    reader.metadata(paths, missing_ok=True)
    handle = reader.handle()
    found = [
        (layout.address, layout.address + 24 + 65 * 24 + 64 * 8)
        for layout in handle.layouts.values()
        if layout.layout == 2 and layout.n_elements
    ]
    reader.close()
    return found


def header_ranges(content: bytes) -> list[tuple[int, int]]:
    """Where the object headers (OHDR) are, signature to checksum: damage there fails libhdf5's checksum."""
    found, at = [], content.find(b"OHDR")
    while at >= 0:
        flags = content[at + 5]
        prefix = 6 + (16 if flags & 0x20 else 0) + (4 if flags & 0x10 else 0)
        width = 1 << (flags & 3)
        size = int.from_bytes(content[at + prefix : at + prefix + width], "little")
        found.append((at, min(len(content), at + prefix + width + size + 4)))
        at = content.find(b"OHDR", at + 4)
    return found


def mutations(path: Path, n: int, seed: int) -> list[tuple[str, int, bytes | None]]:
    """``n`` seeded mutations: (kind, offset, new bytes); kind "truncate" cuts the file at offset."""
    rng = random.Random(seed)
    content = path.read_bytes()
    size = len(content)
    gaps = structure_ranges(path)
    weights = [b - a for a, b in gaps]
    trees = btree_ranges(path)
    found: list[tuple[str, int, bytes | None]] = []
    headers = header_ranges(content)
    for _ in range(n):
        roll = rng.random()
        if roll < 0.05:
            found.append(("truncate", rng.randrange(size // 2, size), None))
            continue
        if roll < 0.10 and trees:  # two neighbouring keys of a chunk B-tree node swapped, their children not
            a, _ = rng.choice(trees)
            used = int.from_bytes(content[a + 6 : a + 8], "little")
            if used >= 2:
                k = rng.randrange(used - 1)
                first = a + 24 + k * 32  # key k (24 bytes) + child (8 bytes) per entry
                found.append(("write", first, content[first + 32 : first + 56] + content[first + 24 : first + 32]
                              + content[first : first + 24]))  # fmt: skip
                continue
        if roll < 0.20 and headers:  # inside an object header or its continuation (checksummed by HDF5)
            a, b = rng.choice(headers)
            offset = rng.randrange(a, b)
            found.append(("write", offset, bytes([content[offset] ^ (1 << rng.randrange(8))])))
            continue
        if roll < 0.15:
            offset = rng.randrange(size)  # anywhere, chunk data included
        elif roll < 0.45 and trees:
            a, b = rng.choice(trees)
            offset = rng.randrange(a, min(b, size))
        else:
            a, b = rng.choices(gaps, weights)[0]
            offset = rng.randrange(a, b)
        width = min(rng.choice([1, 1, 2, 4, 8]), size - offset)
        if rng.random() < 0.5:
            new = bytes(rng.randrange(256) for _ in range(width))
        else:  # a plausible change of a stored number (an offset, a size, a count): add a small amount
            old = int.from_bytes(content[offset : offset + width], "little")
            delta = rng.choice([1, -1, 8, 0x10, 0x2710, -0x2710, 0x10000])
            new = ((old + delta) % (1 << (8 * width))).to_bytes(width, "little")
        found.append(("write", offset, new))
    return found


def judge(source: str, kind: str, offset: int, new: bytes | None) -> str:
    """Apply one mutation to a copy of ``source`` and say whether the engine's answer is acceptable."""
    import xarray as xr

    import is2grid

    if source not in _REFERENCE:
        _REFERENCE[source] = _engine_values(xr.open_dataset(source, engine="atl10", **_OPTIONS))
    folder = tempfile.mkdtemp(prefix="is2grid-fuzz-")
    path = Path(folder) / Path(source).name
    try:
        shutil.copy(source, path)
        with open(path, "r+b") as f:
            if kind == "truncate":
                f.truncate(offset)
            else:
                f.seek(offset)
                f.write(new or b"")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", is2grid.Is2gridWarning)
                ds = xr.open_dataset(path, engine="atl10", **_OPTIONS)
                got = _engine_values(ds)
                ds.close()
        except is2grid.Is2gridWarning as warning:
            return f"ok: named warning {type(warning).__name__}"
        except is2grid.Is2gridError as err:
            return f"ok: named error {type(err).__name__}"
        except Exception as err:
            return f"UNNAMED {type(err).__name__}: {str(err)[:200]}"
        if _equal(got, _REFERENCE[source]):
            return "ok: original values"
        try:
            expected = _h5py_values(path, got)
        except Exception as err:
            return f"WRONG: values differ from the original and h5py refuses the file ({type(err).__name__})"
        if _equal(got, expected):
            return "ok: what h5py reads"
        differing = [k for k in got if not _same(got[k], expected.get(k))]
        return f"WRONG: values differ from the original and from h5py in {differing}"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


_OPTIONS = {"variables": VARIABLES, "mask_and_scale": False, "decode_times": False}


def _engine_values(ds) -> dict[str, np.ndarray]:
    values = {name: ds[name].values for name in (*VARIABLES, *COORDS)}
    values["trajectory"] = ds.trajectory.values.astype(str)
    values["row_size"] = ds.row_size.values
    return values


def _h5py_values(path: Path, got: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """What h5py reads from the mutated file for the beams and variables the engine returned."""
    import h5py

    from is2grid.products import ATL10

    table = ATL10.segment_variables
    out: dict[str, np.ndarray] = {"trajectory": got["trajectory"], "row_size": got["row_size"]}
    with h5py.File(path) as f:
        for name in (*VARIABLES, *COORDS):
            parts = [f[f"{beam}/{table[name]}"][:] for beam in got["trajectory"]]
            out[name] = np.concatenate(parts) if parts else np.zeros(0)
    return out


def _same(a, b) -> bool:
    if b is None or np.shape(a) != np.shape(b):
        return False
    return bool(np.array_equal(np.asarray(a), np.asarray(b), equal_nan=np.asarray(a).dtype.kind == "f"))


def _equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)


if __name__ == "__main__":  # python tests/fuzzing.py GRANULE N: a longer run by hand
    import sys
    from collections import Counter

    target = Path(sys.argv[1])
    verdicts = Counter()
    for case in mutations(target, int(sys.argv[2]), seed=int(os.environ.get("SEED", "1"))):
        verdict = judge(str(target), *case)
        verdicts[verdict.split(":")[0] + ": " + verdict.split(":", 1)[1].strip()[:60]] += 1
        if not verdict.startswith("ok"):
            print(case, verdict)
    print(verdicts.most_common())
