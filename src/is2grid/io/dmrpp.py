"""DMR++ sidecars: where every chunk of a granule is, in one request instead of a walk of its HDF5 tree.

NASA's Earthdata Cloud keeps, beside HDF5 granules served by OPeNDAP, a ``<granule>.dmrpp`` file written by
OPeNDAP's ``get_dmrpp``: the DAP4 description of every group and dataset (type, dimensions) with the byte
offset, size and filters of every chunk. With it, a remote granule's structure is one GET of the sidecar, made
beside the GET of the granule's first bytes, where walking the HDF5 metadata is about 15 round trips one after
another (superblock, groups, object headers, chunk B-trees).

The document is indexed by a scan of its structural tags (groups, datasets): a few milliseconds for a 2 MB
sidecar, where building an XML tree of it takes 70-100 ms of CPU, as much as gridding the granule. A dataset's
own elements (dimensions, chunks) are parsed when it is first asked for. XML has no ``<`` in text or attribute
values, so every tag is found where it starts.

Anything the sidecar describes in a way is2grid does not read exactly as the HDF5 file would (variable-length
strings, structures, a missing byte order, filter masks, chunks in other files) is marked
:data:`UNSUPPORTED`, and the reader asks the HDF5 file itself for that dataset: a sidecar never changes a value.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import html
import re
import threading
import warnings
from typing import Any

import numpy as np

from is2grid.errors import CorruptGranuleError, Is2gridWarning
from is2grid.io.chunks import CHUNKED, COMPACT, CONTIGUOUS, DEFLATE, SHUFFLE, ChunkIndex, Layout, checked_index

#: the sidecar of ``granule.h5`` is ``granule.h5`` + this, beside it
SUFFIX = ".dmrpp"

DAP4_NAMESPACE = "http://xml.opendap.org/ns/DAP/4.0#"
DMRPP_NAMESPACE = "http://xml.opendap.org/dap/dmrpp/1.0.0#"

#: DAP4 atomic types and their numpy types (String: fixed-length, sized from the storage)
_TYPES = {
    "Byte": "u1", "UByte": "u1", "UInt8": "u1", "Int8": "i1", "Int16": "i2", "UInt16": "u2", "Int32": "i4",
    "UInt32": "u4", "Int64": "i8", "UInt64": "u8", "Float32": "f4", "Float64": "f8", "String": "S",
}  # fmt: skip
_OTHER_VARIABLES = ("Char", "Url", "Enum", "Opaque", "Structure", "Sequence")
_FILTERS = {"deflate": DEFLATE, "shuffle": SHUFFLE}

_ATTRS = r'(?:[^>"]|"[^"]*")*'
_STRUCTURE = re.compile(
    rf"<(/?)(Group|Dimension|{'|'.join((*_TYPES, *_OTHER_VARIABLES))})(?=[\s/>])({_ATTRS}?)(/?)>".encode()
)
_ATTRIBUTE = re.compile(rb'([\w:.-]+)\s*=\s*"([^"]*)"')
_DIM = re.compile(rf"<Dim(?=[\s/>])({_ATTRS}?)/>".encode())
_CHUNKS = re.compile(rf"<dmrpp:chunks(?=[\s/>])({_ATTRS}?)(/?)>".encode())
_CHUNK = re.compile(rf"<dmrpp:chunk(?=[\s/>])({_ATTRS}?)/>".encode())
_CHUNK_SHAPE = re.compile(rb"<dmrpp:chunkDimensionSizes>([^<]*)</dmrpp:chunkDimensionSizes>")
_COMPACT = re.compile(rb"<dmrpp:compact>([^<]*)</dmrpp:compact>")
_FIXED_STRING = re.compile(rf"<dmrpp:FixedLengthStringArray(?=[\s/>])({_ATTRS}?)/>".encode())
_UNREAD = re.compile(rb"<dmrpp:(?:missingdata|vlsa|specialstructuredata|block)(?=[\s/>])")
_FULL_NAME = re.compile(rb'<Attribute name="fullnamepath"[^>]*>\s*<Value>([^<]*)</Value>')
_TEXT_ATTRIBUTE = re.compile(
    rb'<Attribute\s+name="([^"]*)"\s+type="String"\s*>\s*<Value>([^<]*)</Value>\s*</Attribute>'
)


class SidecarError(ValueError):
    """A sidecar that cannot be used at all (not DMR++, another granule's, unbalanced tags)."""


class _Unsupported:
    def __repr__(self) -> str:
        return "UNSUPPORTED"


#: what :meth:`Sidecar.dataset` returns for a dataset it describes in a way is2grid does not read
UNSUPPORTED: Any = _Unsupported()


@dataclasses.dataclass(frozen=True)
class _Variable:
    kind: str
    group: str
    start: int  # the variable's elements: data[start:end]
    end: int


def _attributes(raw: bytes) -> dict[str, str]:
    return {k.decode(): html.unescape(v.decode("utf-8", "replace")) for k, v in _ATTRIBUTE.findall(raw)}


class Sidecar:
    """A parsed DMR++ document: group members, and each dataset's :class:`Layout` and chunk index on demand.

    Parameters
    ----------
    data
        The sidecar's bytes.
    granule
        The granule's file name, checked against the document's ``name`` (a sidecar of another granule
        raises :class:`SidecarError`).
    file_size
        The granule's size in bytes: every chunk must lie inside it.

    Examples
    --------
    >>> doc = b'''<?xml version="1.0"?>
    ... <Dataset xmlns="http://xml.opendap.org/ns/DAP/4.0#" xmlns:dmrpp="http://xml.opendap.org/dap/dmrpp/1.0.0#"
    ...  name="g.h5" dmrpp:href="OPeNDAP_DMRpp_DATA_ACCESS_URL">
    ...   <Group name="gt1r"><Dimension name="n" size="25"/>
    ...     <Float32 name="h"><Dim name="/gt1r/n"/>
    ...       <dmrpp:chunks compressionType="deflate" byteOrder="LE">
    ...         <dmrpp:chunkDimensionSizes>20</dmrpp:chunkDimensionSizes>
    ...         <dmrpp:chunk offset="4000" nBytes="50" chunkPositionInArray="[0]"/>
    ...         <dmrpp:chunk offset="4050" nBytes="30" chunkPositionInArray="[20]"/>
    ...       </dmrpp:chunks></Float32></Group></Dataset>'''
    >>> sidecar = Sidecar(doc, "g.h5", file_size=10_000)
    >>> sorted(sidecar.members("/")), sorted(sidecar.members("gt1r"))
    (['gt1r'], ['h'])
    >>> layout, index = sidecar.dataset("gt1r/h")
    >>> layout.shape, layout.chunk_shape, str(layout.dtype), index.offsets.tolist()
    ((25,), (20,), 'float32', [4000, 4050])
    """

    def __init__(self, data: bytes, granule: str, file_size: int):
        self.data = bytes(data)
        self.granule = granule
        self.file_size = file_size
        head = self.data[:4096]
        root = re.search(rf"<Dataset(?=[\s>])({_ATTRS})>".encode(), head)
        if root is None:
            raise SidecarError("not a DMR++ document (no <Dataset> element at its start)")
        attrs = _attributes(root[1])
        if attrs.get("xmlns") != DAP4_NAMESPACE or attrs.get("xmlns:dmrpp") != DMRPP_NAMESPACE:
            raise SidecarError("not a DMR++ document (not the DAP4 and dmrpp namespaces, with the dmrpp: prefix)")
        if re.search(rb"</Dataset>\s*$", self.data[-256:]) is None:
            raise SidecarError("it does not end with </Dataset> (cut short?)")
        described = attrs.get("name", "")
        if described not in (granule, granule.removeprefix("processed_")):
            raise SidecarError(f"it describes {described!r}, not {granule!r}")
        self.variables: dict[str, _Variable] = {}
        self.groups: dict[str, set[str]] = {"": set()}
        self._group_heads: dict[str, tuple[int, int]] = {}  # group -> its attributes: data[start:end]
        self.dimensions: dict[str, int] = {}
        self._parsed: dict[str, Any] = {}
        self.problems: dict[str, str] = {}  # dataset -> what is wrong with its description
        self._index(root.end())

    def _index(self, start: int) -> None:
        stack: list[tuple[str, str, int]] = []  # (tag, group path or variable path, start)
        group = ""
        flattened = b'name="fullnamepath"' in self.data
        head: tuple[str, int] | None = None  # the group whose attributes end where the next element begins
        for match in _STRUCTURE.finditer(self.data, start):
            if head is not None:
                self._group_heads[head[0]] = (head[1], match.start())
                head = None
            closing, tag, raw, empty = match[1], match[2].decode(), match[3], match[4]
            if closing:
                if not stack or stack[-1][0] != tag:
                    raise SidecarError(f"its tags do not nest (</{tag}> at byte {match.start()})")
                _, path, begin = stack.pop()
                if tag == "Group":
                    group = path.rpartition("/")[0] if "/" in path else ""
                elif not any(t != "Group" for t, _, _ in stack):
                    self._variable(tag, group, path, begin, match.start(), flattened)
                continue
            name = _attributes(raw).get("name", "")
            inside_variable = any(t != "Group" for t, _, _ in stack)
            if tag == "Dimension":
                size = _attributes(raw).get("size")
                if not inside_variable and size is not None and size.isdigit():
                    self.dimensions["/" + "/".join(p for p in (group, name) if p)] = int(size)
                continue
            if tag == "Group":
                if inside_variable or not name:
                    raise SidecarError(f"a group inside a variable or without a name at byte {match.start()}")
                group = "/".join(p for p in (group, name) if p)
                self.groups.setdefault(group, set())
                self._add_member(group)
                if empty:
                    group = group.rpartition("/")[0] if "/" in group else ""
                else:
                    stack.append((tag, group, match.end()))
                    head = (group, match.end())
                continue
            path = "/".join(p for p in (group, name) if p)
            if empty:
                if not inside_variable:
                    self._variable(tag, group, path, match.end(), match.end(), flattened)
            else:
                stack.append((tag, path, match.end()))
        if stack:
            raise SidecarError(f"it ends inside <{stack[-1][0]}> (cut short?)")

    def _add_member(self, path: str) -> None:
        parent, _, name = path.rpartition("/")
        self.groups.setdefault(parent, set()).add(name)

    def _variable(self, kind: str, group: str, path: str, start: int, end: int, flattened: bool) -> None:
        if flattened:
            full = _FULL_NAME.search(self.data, start, end)
            if full is not None:
                path = html.unescape(full[1].decode("utf-8", "replace")).strip("/")
                group = path.rpartition("/")[0]
                parts = group.split("/") if group else []
                for i in range(1, len(parts) + 1):
                    self.groups.setdefault("/".join(parts[:i]), set())
                    self._add_member("/".join(parts[:i]))
        self.variables[path] = _Variable(kind, group, start, end)
        self._add_member(path)

    def members(self, group: str) -> set[str]:
        """Names of the members (datasets and groups) of ``group``; empty if there is no such group."""
        return set(self.groups.get(group.strip("/"), ()))

    def group_attributes(self, group: str) -> dict[str, str]:
        """The text attributes a group's element lists before its first member, as ``get_dmrpp`` writes them.

        >>> doc = b'''<Dataset xmlns="http://xml.opendap.org/ns/DAP/4.0#"
        ...  xmlns:dmrpp="http://xml.opendap.org/dap/dmrpp/1.0.0#" name="g.h5">
        ...   <Group name="gt1l"><Attribute name="atlas_beam_type" type="String"><Value>strong</Value></Attribute>
        ...   <Int8 name="x"/></Group></Dataset>'''
        >>> Sidecar(doc, "g.h5", file_size=10).group_attributes("gt1l")
        {'atlas_beam_type': 'strong'}
        """
        span = self._group_heads.get(group.strip("/"))
        if span is None:
            return {}
        return {
            html.unescape(k.decode("utf-8", "replace")): html.unescape(v.decode("utf-8", "replace")).strip()
            for k, v in _TEXT_ATTRIBUTE.findall(self.data, *span)
        }

    def dataset(self, path: str) -> tuple[Layout, ChunkIndex | None] | None:
        """The layout and chunk index (None unless chunked) of dataset ``path``.

        None if the sidecar has no such dataset; :data:`UNSUPPORTED` if it describes it in a way
        is2grid does not read (the HDF5 file is asked instead).
        """
        path = path.strip("/")
        if path not in self._parsed:
            variable = self.variables.get(path)
            try:
                self._parsed[path] = None if variable is None else self._parse(path, variable)
            except (CorruptGranuleError, KeyError, ValueError) as err:
                self.problems[path] = (
                    str(err) if isinstance(err, CorruptGranuleError) else f"{type(err).__name__}: {err}"
                )
                self._parsed[path] = UNSUPPORTED
        return self._parsed[path]

    def _parse(self, path: str, variable: _Variable) -> Any:
        span = self.data[variable.start : variable.end]
        if variable.kind not in _TYPES or _UNREAD.search(span):
            return UNSUPPORTED
        shape = []
        for dim in _DIM.findall(span):
            attrs = _attributes(dim)
            given = attrs.get("size")
            named = self.dimensions.get(self._dimension(attrs.get("name", ""), variable.group))
            if given is not None and not given.isdigit():
                return UNSUPPORTED
            extent = int(given) if given is not None else named
            if extent is None:
                return UNSUPPORTED
            shape.append(extent)
        n = int(np.prod(shape)) if shape else 1
        chunks = _CHUNKS.search(span)
        settings = _attributes(chunks[1]) if chunks else {}
        compact = _COMPACT.search(span)
        inline = None
        if compact is not None:
            try:
                inline = base64.b64decode(compact[1], validate=True)
            except (binascii.Error, ValueError):
                return UNSUPPORTED
        pieces = [_attributes(c) for c in _CHUNK.findall(span)]
        dtype = self._dtype(variable.kind, settings, span, n, inline, pieces)
        if dtype is None:
            return UNSUPPORTED
        filters = settings.get("compressionType", "").split()
        # shuffle and deflate decode one way only, in whatever order a sidecar lists them (NASA's say "deflate
        # shuffle" for data shuffled first); where a Fletcher-32 checksum sits in the pipeline it does not say
        if len(set(filters)) != len(filters) or not set(filters) <= {"deflate", "shuffle"} or "LBChunk" in settings:
            return UNSUPPORTED
        if any(p.get("fm", "0") not in ("0", "") or "href" in p or "LinkedBlockIndex" in p for p in pieces):
            return UNSUPPORTED
        common = {
            "path": path,
            "shape": tuple(shape),
            "dtype": dtype,
            "filters": frozenset(_FILTERS[f] for f in filters),
        }
        if inline is not None:
            if pieces or filters or len(inline) != n * dtype.itemsize:
                return UNSUPPORTED
            layout = Layout(layout=COMPACT, address=0, size=len(inline), chunk_shape=(), inline=inline, **common)
            return layout, None
        sizes = _CHUNK_SHAPE.search(span)
        if sizes is None:
            if len(pieces) > 1 or filters or (not pieces and n):
                return UNSUPPORTED
            offset, stored = (int(pieces[0]["offset"]), int(pieces[0]["nBytes"])) if pieces else (0, 0)
            if stored != n * dtype.itemsize or offset + stored > self.file_size:
                return UNSUPPORTED
            return Layout(layout=CONTIGUOUS, address=offset, size=stored, chunk_shape=(), **common), None
        chunk_shape = tuple(int(s) for s in sizes[1].split())
        if len(chunk_shape) != len(shape) or not all(chunk_shape):
            return UNSUPPORTED
        layout = Layout(layout=CHUNKED, address=0, size=0, chunk_shape=chunk_shape, **common)
        found = []
        for piece in pieces:
            position = [int(p) for p in re.findall(r"\d+", piece.get("chunkPositionInArray", "[0]" * len(shape)))]
            found.append((tuple(position[: len(shape)]), int(piece["offset"]), int(piece["nBytes"])))
        return layout, checked_index(layout, found, self.file_size, f"{self.granule}{SUFFIX}")

    def _dimension(self, name: str, group: str) -> str:
        """The full name of a dimension named in ``group`` (DAP4 names them from the root: ``/gt1r/x``)."""
        if name.startswith("/"):
            return name
        parts = group.split("/") if group else []
        for i in range(len(parts), -1, -1):
            full = "/" + "/".join([*parts[:i], name])
            if full in self.dimensions:
                return full
        return "/" + name

    @staticmethod
    def _dtype(kind: str, settings: dict[str, str], span: bytes, n: int, inline: bytes | None, pieces: list) -> Any:
        code = _TYPES[kind]
        if code == "S":
            fixed = _FIXED_STRING.search(span)
            if fixed is not None:
                length = _attributes(fixed[1]).get("string_length", "")
                return np.dtype(f"S{length}") if length.isdigit() and int(length) else None
            stored = len(inline) if inline is not None else (int(pieces[0]["nBytes"]) if len(pieces) == 1 else 0)
            if _CHUNK_SHAPE.search(span) or not n or not stored or stored % n:
                return None
            return np.dtype(f"S{stored // n}")
        dtype = np.dtype(code)
        if dtype.itemsize == 1:
            return dtype
        order = settings.get("byteOrder")
        if order not in ("LE", "BE"):
            return None if n else dtype  # BES writes it; without it the bytes' order is a guess (but for no bytes)
        return dtype.newbyteorder("<" if order == "LE" else ">")


def superblock_sizes(head: bytes) -> tuple[int, int]:
    r"""The sizes of offsets and lengths from the first bytes of an HDF5 file.

    Examples
    --------
    >>> superblock_sizes(b"\x89HDF\r\n\x1a\n" + bytes([0, 0, 0, 0, 0, 8, 8]))
    (8, 8)
    >>> superblock_sizes(b"\x89HDF\r\n\x1a\n" + bytes([2, 8, 8]))
    (8, 8)
    """
    if len(head) > 10 and head[8] in (2, 3):
        return head[9], head[10]
    if len(head) > 14 and head[8] in (0, 1):
        return head[13], head[14]
    return 8, 8


class SidecarHeader:
    """A granule's structure from its sidecar, with the HDF5 header read for what the sidecar does not describe.

    The same interface as :class:`is2grid.io.h5coro_adapter.H5Header`, plus :meth:`chunk_index`: the
    chunk index the sidecar gives, so that no chunk B-tree is walked.
    """

    def __init__(self, sidecar: Sidecar, head: bytes, fallback: Any):
        self.sidecar = sidecar
        self.name = f"{sidecar.granule}{SUFFIX}"
        self.offset_size, self.length_size = superblock_sizes(head)
        self._fallback = fallback
        self._h5: Any = None
        self._lock = threading.Lock()
        self.asked_file: set[str] = set()  # datasets read from the HDF5 header instead (for tests and the curious)

    def _file(self) -> Any:
        with self._lock:
            if self._h5 is None:
                self._h5 = self._fallback()
            return self._h5

    def layout(self, path: str) -> Layout | None:
        found = self.sidecar.dataset(path)
        if found is UNSUPPORTED:
            problem = self.sidecar.problems.get(path.strip("/"))
            if problem is not None and path.strip("/") not in self.asked_file:
                warnings.warn(
                    f"{self.name}: its description of {path!r} cannot be used ({problem}); that dataset is read "
                    "from the granule's own HDF5 header instead. The sidecar may be damaged or out of date.",
                    Is2gridWarning,
                    stacklevel=2,
                )
            self.asked_file.add(path.strip("/"))
            return self._file().layout(path)
        return None if found is None else found[0]

    def chunk_index(self, path: str) -> ChunkIndex | None:
        found = self.sidecar.dataset(path)
        return found[1] if isinstance(found, tuple) else None

    def members(self, path: str) -> set[str]:
        return self.sidecar.members(path)

    def group_attributes(self, path: str) -> dict[str, str]:
        return self.sidecar.group_attributes(path)

    def trim(self) -> None:
        if self._h5 is not None:
            self._h5.trim()

    def clear(self) -> None:
        if self._h5 is not None:
            self._h5.clear()
