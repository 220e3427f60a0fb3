"""The only module that knows h5coro: its parsers, adapted and fixed, behind :class:`H5Header`.

h5coro (1.0.7, the version tested and pinned) parses HDF5 object headers, but lists groups by string
prefix, reads 16-byte fill values as numbers, checks no checksums and asks for a few bytes at a time;
the subclasses here fix that, and the patch of the same fixes for h5coro itself is kept in
``patches/h5coro-1.0.7.diff`` to send upstream. Nothing else in is2grid imports h5coro or touches
its internals: the reader sees :class:`H5Header` and :class:`is2grid.io.chunks.Layout`.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from is2grid.errors import CorruptGranuleError, GranuleError
from is2grid.io import checksum
from is2grid.io.chunks import DEFLATE, FLETCHER32, SHUFFLE, Layout
from is2grid.io.sources import ByteSource

#: h5coro reads metadata in lines of this size (its default, 4 MB lines, moved whole granules).
METADATA_LINE = 64 * 1024


#: h5coro keeps every line it reads; past this many a granule's line cache is dropped.
MAX_CACHED_LINES = 256


class SourceDriver:
    """h5coro's driver interface over a ByteSource (reads past the end are clipped, as files do)."""

    def __init__(self, source: ByteSource):
        self.source = source

    def read(self, pos: int, size: int) -> memoryview:
        stop = min(pos + size, self.source.size())
        if stop <= pos:
            return memoryview(b"")
        return self.source.read([pos], [stop])[0]

    def close(self) -> None:
        pass


def in_cache(h5: Any, pos: int, size: int) -> tuple[memoryview, int] | None:
    """The cached line holding bytes ``[pos, pos + size)`` whole, and their offset in it; None if not cached.

    h5coro's header parser asks for a few bytes at a time, tens of thousands of times per open; answering
    those from the line directly was a third of a local open.
    """
    start = pos + h5.baseAddress
    line = start & h5.cacheLineMask
    view = h5.cache.get(line)
    if view is not None and start - line + size <= len(view):
        return view, start - line
    return None


@functools.cache
def parsers() -> tuple[type, type]:
    """h5coro's file and dataset parsers, adapted (made on first use: h5coro is imported lazily)."""
    import struct

    from h5coro import h5coro
    from h5coro.h5dataset import H5Dataset

    class H5Coro(h5coro.H5Coro):
        def ioRequest(self, pos, size, caching=True, prefetch=False):
            found = in_cache(self, pos, size) if caching else None
            if found is not None:
                return found[0][found[1] : found[1] + size]
            data = super().ioRequest(pos, size, caching, prefetch)
            # h5coro joins reads that cross a cache line into bytes, then calls .tobytes() on them
            return memoryview(data) if isinstance(data, bytes) else data

    fields = {n: struct.Struct("<" + c).unpack_from for n, c in ((1, "B"), (2, "H"), (4, "I"), (8, "Q"))}

    class Described(H5Dataset):
        """h5coro's header parser, also recording the byte order it skips (bit 0 of the datatype class bits)."""

        def readField(self, size):
            found = in_cache(self.resourceObject, self.pos, size) if size in fields else None
            if found is None:
                return super().readField(size)
            self.pos += size
            return fields[size](*found)[0]

        def datatypeMsgHandler(self, msg_size, obj_hdr_flags, dlvl, meta=None):
            target = meta if meta is not None else self.meta
            version_class = int.from_bytes(bytes(self.resourceObject.ioRequest(self.pos, 4)), "little")
            found = super().datatypeMsgHandler(msg_size, obj_hdr_flags, dlvl, meta)
            target.big_endian = (version_class & 0x0F) in (0, 1) and bool((version_class >> 8) & 1)
            return found

        def fillvalueMsgHandler(self, msg_size, obj_hdr_flags, dlvl):
            # h5coro reads a fill value as one number: a 16-byte one (a variable-length string's, as nccopy
            # writes) raised inside the handler, which h5coro took for an unknown message and skipped from
            # the wrong place, losing the rest of the header (the data layout among it)
            start = self.pos
            version = self._field(start, 1)
            at = start + 3 if version == 2 else start + 1
            defined = self._field(at, 1) if version == 2 else self._field(at, 1) & 0x20
            size = self._field(at + 1, 4) if defined else 0
            if size in (0, 1, 2, 4, 8):
                return super().fillvalueMsgHandler(msg_size, obj_hdr_flags, dlvl)
            self.meta.fillsize = size
            self.meta.fillvalue = bytes(self.resourceObject.ioRequest(at + 5, size))
            self.pos = start + msg_size
            return msg_size

        # metadata blocks are checked against their checksums before h5coro parses them (it skips them)

        def _field(self, pos: int, size: int) -> int:
            return int.from_bytes(bytes(self.resourceObject.ioRequest(pos, size)), "little")

        def _checked(self, what: str, start: int, covered: int, zeroed: int | None = None) -> None:
            """The block at ``start`` whose checksum follows its first ``covered`` bytes (or sits at ``zeroed``)."""
            done = self.resourceObject.__dict__.setdefault("is2grid_checked", set())
            if start in done:
                return
            at = start + covered if zeroed is None else zeroed
            block = bytes(self.resourceObject.ioRequest(start, covered))
            if len(block) < covered or len(bytes(self.resourceObject.ioRequest(at, 4))) < 4:
                raise CorruptGranuleError(
                    f"{self.resourceObject.resource}: the {what} at byte {start} runs past the end of the file: it is "
                    "truncated, download it again."
                )
            stored = self._field(at, 4)
            if zeroed is not None:
                block = block[: at - start] + bytes(4) + block[at - start + 4 :]
            if not checksum.verify(block, stored):
                raise CorruptGranuleError(
                    f"{self.resourceObject.resource}: the {what} at byte {start} fails its checksum (as libhdf5 says: "
                    "incorrect metadata checksum): the file is damaged. Download the granule again."
                )
            done.add(start)

        def readObjHdrV0(self, dlvl):
            start = self.pos
            flags = self._field(start + 5, 1)
            prefix = 6 + (16 if flags & 0x20 else 0) + (4 if flags & 0x10 else 0)
            width = 1 << (flags & 0x3)
            self._checked("object header", start, prefix + width + self._field(start + prefix, width))
            return super().readObjHdrV0(dlvl)

        def headercontMsgHandler(self, msg_size, obj_hdr_flags, dlvl):
            if not obj_hdr_flags & self.CUSTOM_V1_FLAG:
                files = self.resourceObject
                offset = self._field(self.pos, files.offsetSize)
                length = self._field(self.pos + files.offsetSize, files.lengthSize)
                if length < 8:
                    raise CorruptGranuleError(f"{files.resource}: an object header continuation of {length} bytes.")
                self._checked("object header continuation", offset, length - 4)
            return super().headercontMsgHandler(msg_size, obj_hdr_flags, dlvl)

        def readFractalHeap(self, msg_type, obj_hdr_flags, dlvl):
            files, start = self.resourceObject, self.pos
            length, offset = files.lengthSize, files.offsetSize
            filters = self._field(start + 7, 2)
            covered = 22 + 12 * length + 3 * offset + ((length + 4 + filters) if filters else 0)
            self._checked("fractal heap header", start, covered)
            return super().readFractalHeap(msg_type, obj_hdr_flags, dlvl)

        def readDirectBlock(self, heap_info, block_size, obj_hdr_flags, dlvl):
            start, offset = self.pos, self.resourceObject.offsetSize
            if heap_info["dblk_checksum"]:
                at = start + 5 + offset + heap_info["blk_offset_size"]
                self._checked("fractal heap direct block", start, block_size, zeroed=at)
            live = self._live[-1] if getattr(self, "_live", None) else None
            if live is None or heap_info["msg_type"] != self.LINK_MSG:
                return super().readDirectBlock(heap_info, block_size, obj_hdr_flags, dlvl)
            # the group's links: only those its name index lists, each read where its heap ID says it is
            block_offset = self._field(start + 5 + offset, heap_info["blk_offset_size"])
            for heap_offset in sorted(o for o in live if block_offset <= o < block_offset + block_size):
                self.pos = start + (heap_offset - block_offset)
                self.readMessage(self.LINK_MSG, block_size, obj_hdr_flags, dlvl)
                heap_info["cur_objects"] += 1
                if self.earlyExit and self.datasetFound:
                    break
            self.pos = start + block_size
            return block_size

        # h5coro reads a group's links by scanning its fractal heap's blocks from start to end, so a link
        # deleted with h5py or libhdf5 (freed, not zeroed, and its space perhaps reused) still shows, pointing
        # at a freed object header. The group's name index (a version 2 B-tree) holds the heap IDs of the live
        # links only: where it can be read, the links are read from there.

        def linkinfoMsgHandler(self, msg_size, obj_hdr_flags, dlvl):
            live = self._live_links(self.pos)
            self.__dict__.setdefault("_live", []).append(live)
            try:
                return super().linkinfoMsgHandler(msg_size, obj_hdr_flags, dlvl)
            finally:
                self._live.pop()

        def _live_links(self, pos: int) -> set[int] | None:
            """Heap offsets of the live links of the group whose link info message is at ``pos`` (None: unknown)."""
            files = self.resourceObject
            o, length = files.offsetSize, files.lengthSize
            flags = self._field(pos + 1, 1)
            at = pos + 2 + (8 if flags & 0x1 else 0)
            heap, index = self._field(at, o), self._field(at + o, o)
            invalid = (1 << (8 * o)) - 1
            if heap == invalid or index == invalid or bytes(files.ioRequest(heap, 4)) != b"FRHP":
                return None
            id_length = self._field(heap + 5, 2)
            huge_and_tiny = self._field(heap + 14 + 7 * length + 2 * o, length) + self._field(
                heap + 14 + 9 * length + 2 * o, length
            )
            offset_width = (self._field(heap + 16 + 12 * length + 2 * o, 2) + 7) // 8
            if huge_and_tiny or bytes(files.ioRequest(index, 4)) != b"BTHD":
                return None
            self._checked("link name index (v2 B-tree) header", index, 16 + o + 2 + length)
            kind, node_size = self._field(index + 5, 1), self._field(index + 6, 4)
            record, depth = self._field(index + 10, 2), self._field(index + 12, 2)
            root, count = self._field(index + 16, o), self._field(index + 16 + o, 2)
            if kind != 5 or depth > 1 or record < 4 + id_length:
                return None
            leaf_width = (((node_size - 10) // record).bit_length() - 1) // 8 + 1
            records: list[bytes] = []

            def node(address: int, n: int, signature: bytes, children: int) -> list[tuple[int, int]]:
                if bytes(files.ioRequest(address, 4)) != signature:
                    raise CorruptGranuleError(f"{files.resource}: no link name index node at byte {address}.")
                pointers = 6 + n * record
                self._checked("link name index node", address, pointers + children * (o + leaf_width))
                block = bytes(files.ioRequest(address + 6, n * record))
                records.extend(block[i * record : (i + 1) * record] for i in range(n))
                at = address + pointers
                return [
                    (self._field(at + i * (o + leaf_width), o), self._field(at + i * (o + leaf_width) + o, leaf_width))
                    for i in range(children)
                ]

            if depth == 0:
                node(root, count, b"BTLF", 0)
            else:
                for child, n in node(root, count, b"BTIN", count + 1):
                    node(child, n, b"BTLF", 0)
            live = set()
            for entry in records:
                heap_id = entry[4 : 4 + id_length]
                if (heap_id[0] >> 4) & 0x3:  # not a managed object
                    return None
                live.add(int.from_bytes(heap_id[1 : 1 + offset_width], "little"))
            return live

        def readIndirectBlock(self, heap_info, block_size, obj_hdr_flags, dlvl):
            rows = heap_info["curr_num_rows"]
            if block_size > 0:
                rows = (
                    self.highestBit(block_size)
                    - self.highestBit(heap_info["starting_blk_size"] * heap_info["table_width"])
                    + 1
                )
            entries = rows * heap_info["table_width"]
            offset = self.resourceObject.offsetSize
            self._checked(
                "fractal heap indirect block", self.pos, 5 + offset + heap_info["blk_offset_size"] + entries * offset
            )
            return super().readIndirectBlock(heap_info, block_size, obj_hdr_flags, dlvl)

    return H5Coro, Described


def described(*args, **kwargs):
    """h5coro's dataset parser, recording byte order and reading header fields from the cache."""
    return parsers()[1](*args, **kwargs)


class H5Header:
    """One granule's HDF5 structure as h5coro reads it: dataset layouts and group members.

    The rest of is2grid sees :class:`is2grid.io.chunks.Layout` objects and names, never h5coro's.
    """

    def __init__(self, name: str, source: Any):
        H5Coro = parsers()[0]
        self.name = name
        try:
            self._h5 = H5Coro(
                name,
                lambda resource, credentials: SourceDriver(source),
                cacheLineSize=METADATA_LINE,
                errorChecking=True,
            )
        except GranuleError:
            raise
        except Exception as err:
            raise CorruptGranuleError(
                f"{name}: not a readable HDF5 file ({type(err).__name__}: {err}). "
                "Is it a complete granule? Download it again if it was cut short."
            ) from None
        self.offset_size: int = self._h5.offsetSize
        self.length_size: int = self._h5.lengthSize

    def group_attributes(self, path: str) -> dict[str, str]:
        """Nothing: a group's attributes are not read from the HDF5 header (they would cost round trips)."""
        return {}

    def layout(self, path: str) -> Layout | None:
        """The layout of dataset ``path``; None if there is no such dataset.

        Raises
        ------
        is2grid.CorruptGranuleError
            When the dataset's header is there but damaged.
        """
        if getattr(self._h5.metadataTable.get(path), "big_endian", None) is None:
            self._h5.metadataTable.pop(path, None)  # described by plain h5coro: no byte order recorded
        meta = described(self._h5, path, earlyExit=True, metaOnly=True, enableAttributes=False).meta
        if meta.typeSize == 0 and meta.layout is None:
            return None
        if meta.typeSize == 0 or meta.layout is None:
            raise CorruptGranuleError(
                f"{self.name}: dataset {path!r} is missing or its description is damaged. Download the granule again."
            )
        return layout_of(path, meta, self.offset_size)

    def chunk_index(self, path: str) -> None:
        """None: the chunk index is read from the file's B-tree (see :func:`is2grid.io.chunks.index_steps`)."""
        return None

    def members(self, path: str) -> set[str]:
        """The names of a group's members (datasets and groups)."""
        # h5coro matches members by string prefix ("lidar" would list "lidarDocument"'s "Document"):
        # take the names below "path/" from the addresses it read
        from h5coro.h5coro import massagePath

        # as h5coro's inspectPath, through the checking parser
        described(self._h5, massagePath(path), earlyExit=False, metaOnly=True, enableAttributes=False)
        prefix = path.strip("/") + "/" if path.strip("/") else ""
        known = list(self._h5.pathAddresses)
        return {p[len(prefix) :].split("/")[0] for p in known if p.startswith(prefix) and len(p) > len(prefix)}

    def trim(self) -> None:
        """Drop the cached metadata lines once there are more than :data:`MAX_CACHED_LINES`."""
        if len(self._h5.cache) > MAX_CACHED_LINES:
            self._h5.cache.clear()

    def clear(self) -> None:
        """Drop every cached metadata line."""
        self._h5.cache.clear()


def layout_of(path: str, meta: Any, offset_size: int) -> Layout:
    """What reading a dataset needs, from h5coro's description of it."""
    invalid = (1 << (8 * offset_size)) - 1
    dtype = numpy_dtype(path, meta)
    if getattr(meta, "big_endian", False) and dtype.itemsize > 1:
        dtype = dtype.newbyteorder(">")  # honoured on decode; outputs are native
    filters = frozenset(k for k, on in meta.filter.items() if on)
    unsupported = filters - {DEFLATE, SHUFFLE, FLETCHER32}
    if unsupported:
        raise GranuleError(
            f"dataset {path!r} uses HDF5 filter(s) {sorted(unsupported)}, which is2grid cannot decode; ICESat-2 "
            "granules use deflate and shuffle only. Is this a re-packed granule? Use the NSIDC original."
        )
    layout = Layout(
        path=path,
        shape=tuple(int(d) for d in meta.dimensions),
        dtype=dtype,
        layout=int(meta.layout),
        address=int(meta.address),
        size=int(meta.size or 0),
        chunk_shape=tuple(int(c) for c in meta.chunkDimensions),
        filters=filters,
    )
    if layout.address == invalid and layout.n_elements:
        raise CorruptGranuleError(f"dataset {path!r} has no data address although it holds {layout.n_elements} values.")
    return layout


def numpy_dtype(path: str, meta: Any) -> np.dtype:
    """The stored numpy dtype of an h5coro dataset description (variable-length strings as 16-byte records)."""
    if meta.type == meta.STRING_TYPE:
        return np.dtype(f"S{meta.typeSize}")
    if meta.type == getattr(meta, "VL_STRING_TYPE", None) and meta.typeSize == 16:
        return np.dtype("V16")  # variable-length strings' records: GranuleReader.vlen_text reads the strings
    if meta.type in (meta.FIXED_POINT_TYPE, meta.FLOATING_POINT_TYPE):
        found = meta.TO_NUMPY_TYPE[meta.type][meta.signedval].get(meta.typeSize)
        if found is not None:
            return np.dtype(found)
    raise GranuleError(
        f"dataset {path!r} has an HDF5 datatype is2grid does not read (class {meta.type}, {meta.typeSize} bytes); "
        "ICESat-2 datasets are integers, floats and fixed-length strings. Is this an ICESat-2 granule?"
    )
