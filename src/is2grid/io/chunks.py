"""Read plans: where the bytes of a dataset's rows are, from its HDF5 layout and chunk B-tree.

h5coro parses the object header (shape, type, layout, filters); this module walks the version-1
chunk B-tree itself, so that the nodes of many datasets are fetched together, level by level, and
every chunk key is checked before anything is decoded. The walk is written as a generator that
yields the byte ranges it needs and receives their bytes, so the same code serves the blocking and
the asyncio read paths.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
import struct
from collections.abc import Generator, Sequence

import numpy as np

from is2grid.errors import CorruptGranuleError, GranuleError

COMPACT, CONTIGUOUS, CHUNKED = 0, 1, 2
DEFLATE, SHUFFLE, FLETCHER32 = 1, 2, 3
#: HDF5's default chunk B-tree K: at most 2K entries per node.
_MAX_ENTRIES = 64
#: deflate's largest expansion (258 bytes from about a quarter of a byte): a bound on a chunk's decoded size
_MAX_INFLATE_RATIO = 1032

Ranges = list[tuple[int, int]]


@dataclasses.dataclass(frozen=True)
class Layout:
    """What reading one dataset needs to know: shape, stored dtype, layout, address, chunks, filters.

    Made by :func:`is2grid.io.h5coro_adapter.layout_of` from the dataset's object header, or by
    :class:`is2grid.io.dmrpp.Sidecar` from a DMR++ sidecar.
    """

    path: str
    shape: tuple[int, ...]
    dtype: np.dtype
    layout: int
    address: int
    size: int
    chunk_shape: tuple[int, ...]
    filters: frozenset[int]
    #: a compact dataset's bytes when they come from elsewhere than the file (a DMR++ sidecar)
    inline: bytes | None = dataclasses.field(default=None, repr=False, compare=False)

    @functools.cached_property
    def n_elements(self) -> int:
        return math.prod(self.shape)

    @functools.cached_property
    def row_bytes(self) -> int:
        return math.prod(self.shape[1:]) * self.dtype.itemsize

    @functools.cached_property
    def chunk_bytes(self) -> int:
        # asked for once per chunk decoded
        return math.prod(self.chunk_shape) * self.dtype.itemsize


@dataclasses.dataclass(frozen=True)
class ChunkIndex:
    """Every chunk of a chunked dataset: its first row (and other dims), file offset, stored size."""

    starts: np.ndarray  # (n, ndim) int64
    offsets: np.ndarray  # (n,) int64
    sizes: np.ndarray  # (n,) int64

    def covering(self, lo: int, hi: int, rows_per_chunk: int) -> np.ndarray:
        """Indices of the chunks that hold rows [lo, hi)."""
        first = self.starts[:, 0]
        return np.flatnonzero((first < hi) & (first + rows_per_chunk > lo))


def index_steps(
    layouts: Sequence[Layout], offset_size: int, file_size: int, name: str
) -> Generator[Ranges, list[memoryview], dict[str, ChunkIndex]]:
    """Walk the chunk B-trees of ``layouts`` together; yields the node ranges of each level."""
    keys = {layout.path: 8 + 8 * (len(layout.shape) + 1) for layout in layouts}
    entries: dict[str, list[tuple[tuple[int, ...], int, int, int]]] = {layout.path: [] for layout in layouts}
    by_path = {layout.path: layout for layout in layouts}
    level = [(layout.path, layout.address) for layout in layouts]
    seen: set[int] = set()
    while level:
        ranges = []
        for path, address in level:
            if address in seen or not 0 < address < file_size:
                raise CorruptGranuleError(
                    f"{name}: the chunk index of {path!r} points to byte {address}, "
                    f"{'again' if address in seen else 'outside the file'}. The granule is damaged: download it again."
                )
            seen.add(address)
            ranges.append((address, min(file_size, address + _node_bytes(offset_size, keys[path], _MAX_ENTRIES))))
        blobs = yield ranges
        following: list[tuple[str, int]] = []
        for (path, _), blob in zip(level, blobs, strict=True):
            node_level, children = _parse_node(bytes(blob), offset_size, keys[path], by_path[path], name)
            if node_level > 0:
                following.extend((path, child) for _, child, _, _ in children)
            else:
                entries[path].extend(children)
        level = following
    return {path: checked_index(by_path[path], found, file_size, name) for path, found in entries.items()}


def _node_bytes(offset_size: int, key_size: int, n: int) -> int:
    return 8 + 2 * offset_size + (n + 1) * key_size + n * offset_size


def _parse_node(blob: bytes, offset_size: int, key_size: int, layout: Layout, name: str):
    if len(blob) < 8 or blob[:4] != b"TREE" or blob[4] != 1:
        raise CorruptGranuleError(
            f"{name}: the chunk index of {layout.path!r} is damaged (no raw-data B-tree node where one should be). "
            "Download the granule again."
        )
    node_level, used = blob[5], struct.unpack_from("<H", blob, 6)[0]
    needed = _node_bytes(offset_size, key_size, used)
    if used > _MAX_ENTRIES or needed > len(blob):
        raise CorruptGranuleError(
            f"{name}: a chunk index node of {layout.path!r} claims {used} entries, more than fit. Download it again."
        )
    ndim = len(layout.shape)
    fmt_key = f"<II{ndim + 1}Q"
    fmt_addr = "<Q" if offset_size == 8 else "<I"
    pos = 8 + 2 * offset_size
    children = []
    for _ in range(used):
        size, mask, *coords = struct.unpack_from(fmt_key, blob, pos)
        pos += key_size
        (child,) = struct.unpack_from(fmt_addr, blob, pos)
        pos += offset_size
        if node_level == 0 and mask != 0:
            raise GranuleError(
                f"{name}: a chunk of {layout.path!r} skips some of its filters (filter mask {mask}), which is2grid "
                "does not decode. Use the NSIDC original granule."
            )
        children.append((tuple(coords[:ndim]), child, size, mask))
    keys = [c[0] for c in children]
    if any(later <= earlier for earlier, later in itertools.pairwise(keys)):
        raise CorruptGranuleError(
            f"{name}: a chunk index node of {layout.path!r} lists its chunks out of order (an HDF5 B-tree keeps its "
            "keys sorted; libhdf5 would not find them). The granule is damaged: download it again."
        )
    return node_level, children


def checked_index(layout: Layout, found: list, file_size: int, name: str) -> ChunkIndex:
    """The chunks ``found`` ((start, offset, size) each) as a ChunkIndex, once they are checked to tile the dataset."""
    ndim = len(layout.shape)
    starts = np.array([c[0] for c in found], dtype=np.int64).reshape(-1, ndim)
    offsets = np.array([c[1] for c in found], dtype=np.int64)
    sizes = np.array([c[2] for c in found], dtype=np.int64)

    def fail(problem: str) -> CorruptGranuleError:
        return CorruptGranuleError(
            f"{name}: the chunk index of {layout.path!r} is damaged ({problem}); its values cannot be trusted. "
            "Download the granule again."
        )

    chunk = np.asarray(layout.chunk_shape[:ndim], dtype=np.int64)
    shape = np.asarray(layout.shape, dtype=np.int64)
    order = np.lexsort(starts.T[::-1]) if len(starts) else np.arange(0)
    if len(starts):
        if (starts < 0).any() or (starts >= shape).any():
            raise fail("a chunk starts outside the dataset")
        if (starts % chunk).any():
            raise fail("a chunk starts off the chunk grid")
        ordered = starts[order]
        if (ordered[1:] == ordered[:-1]).all(axis=1).any():
            raise fail("two chunks claim the same rows")
        if (sizes <= 0).any() or (offsets < 0).any() or (offsets + sizes > file_size).any():
            raise fail("a chunk lies outside the file")
        if DEFLATE not in layout.filters and (sizes != layout.chunk_bytes + 4 * (FLETCHER32 in layout.filters)).any():
            raise fail("an uncompressed chunk has the wrong size")
        if DEFLATE in layout.filters and layout.chunk_bytes > _MAX_INFLATE_RATIO * sizes.min() + 1024:
            raise fail(
                f"a chunk of {int(sizes.min())} bytes would have to inflate to {layout.chunk_bytes} (deflate expands "
                f"at most {_MAX_INFLATE_RATIO}-fold): the chunk shape {list(layout.chunk_shape)} is wrong"
            )
    expected = int(np.prod(-(-shape // chunk))) if len(shape) else 0
    if len(starts) != expected:
        raise fail(f"{len(starts)} chunks where the shape needs {expected}")
    return ChunkIndex(starts[order], offsets[order], sizes[order])
