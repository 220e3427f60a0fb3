"""DMR++ sidecars of HDF5 files, written from h5py's view of them (not from is2grid's reader).

The form follows OPeNDAP's ``get_dmrpp`` as NASA's Earthdata Cloud sidecars show it (see the ATL08 sidecar in
tests/data/dmrpp): nested ``<Group>`` elements, named dimensions declared in their group, attributes, and a
``dmrpp:chunks`` element per dataset with its filters, byte order, chunk shape and every chunk's position,
offset and size (``h5py``'s ``get_chunk_info``); contiguous datasets as one chunk, compact ones inline, fixed-length
strings with ``dmrpp:FixedLengthStringArray``, variable-length strings as ``dmrpp:vlsa`` (which is2grid does not
take from a sidecar).
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

import h5py
import numpy as np

_TYPES = {
    "u1": "UInt8", "i1": "Int8", "i2": "Int16", "u2": "UInt16", "i4": "Int32", "u4": "UInt32", "i8": "Int64",
    "u8": "UInt64", "f4": "Float32", "f8": "Float64",
}  # fmt: skip


def sidecar_text(path: Path, name: str | None = None) -> str:
    """The DMR++ document of the HDF5 file at ``path`` (``name``: the name it gives, the file's by default)."""
    lines = [
        '<?xml version="1.0" encoding="ISO-8859-1"?>',
        '<Dataset xmlns="http://xml.opendap.org/ns/DAP/4.0#" xmlns:dmrpp="http://xml.opendap.org/dap/dmrpp/1.0.0#" '
        f'dapVersion="4.0" dmrVersion="1.0" name="{html.escape(name or path.name)}" '
        'dmrpp:href="OPeNDAP_DMRpp_DATA_ACCESS_URL" dmrpp:version="3.21.1">',
    ]
    with h5py.File(path, "r") as file:
        _group(file, "", lines, 1)
    lines.append("</Dataset>")
    return "\n".join(lines) + "\n"


def write_sidecar(path: Path, name: str | None = None) -> Path:
    """Write ``path`` + ".dmrpp" beside the file; returns its path."""
    out = path.with_name(path.name + ".dmrpp")
    out.write_text(sidecar_text(path, name), encoding="utf-8")
    return out


def _group(group: h5py.Group, prefix: str, lines: list[str], depth: int) -> None:
    pad = "    " * depth
    if prefix:  # a group's own attributes first, as get_dmrpp writes them (the beams' atlas_beam_type...)
        _text_attributes(group, lines, pad)
    datasets = [(k, v) for k, v in group.items() if isinstance(v, h5py.Dataset)]
    for size in sorted({d.shape[0] for _, d in datasets if d.shape}):
        lines.append(f'{pad}<Dimension name="n{size}" size="{size}"/>')
    for key, value in datasets:
        _dataset(key, value, prefix, lines, depth)
    for key, value in group.items():
        if isinstance(value, h5py.Group):
            lines.append(f'{pad}<Group name="{html.escape(key)}">')
            _group(value, f"{prefix}/{key}", lines, depth + 1)
            lines.append(f"{pad}</Group>")


def _dataset(key: str, dataset: h5py.Dataset, prefix: str, lines: list[str], depth: int) -> None:
    pad, inner = "    " * depth, "    " * (depth + 1)
    dtype = dataset.dtype
    vlen = h5py.check_string_dtype(dtype)
    if vlen is not None or dtype.kind == "S":
        kind = "String"
    elif dtype.kind in "iuf" and dtype.str[1:] in _TYPES:
        kind = _TYPES[dtype.str[1:]]
    else:
        return
    lines.append(f'{pad}<{kind} name="{html.escape(key)}">')
    for axis, size in enumerate(dataset.shape):
        lines.append(f'{inner}<Dim name="{prefix}/n{size}"/>' if axis == 0 else f'{inner}<Dim size="{size}"/>')
    _text_attributes(dataset, lines, inner)
    order = "BE" if dtype.byteorder == ">" else "LE"
    if vlen is not None and dtype.kind == "O":
        lines.append(f"{inner}<dmrpp:vlsa/>")
    else:
        if dtype.kind == "S" and dataset.shape:
            lines.append(f'{inner}<dmrpp:FixedLengthStringArray string_length="{dtype.itemsize}" pad="null_pad"/>')
        _storage(dataset, order, lines, inner)
    lines.append(f"{pad}</{kind}>")


def _text_attributes(node: h5py.Group | h5py.Dataset, lines: list[str], pad: str) -> None:
    for attr, value in node.attrs.items():
        if isinstance(value, bytes | str | np.bytes_):
            text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
            lines.append(f'{pad}<Attribute name="{html.escape(attr)}" type="String">')
            lines.append(f"{pad}    <Value>{html.escape(text)}</Value>")
            lines.append(f"{pad}</Attribute>")


def _storage(dataset: h5py.Dataset, order: str, lines: list[str], pad: str) -> None:
    plist = dataset.id.get_create_plist()
    layout = plist.get_layout()
    if layout == h5py.h5d.COMPACT:
        raw = np.ascontiguousarray(dataset[()]).tobytes()
        lines.append(f"{pad}<dmrpp:compact>{base64.b64encode(raw).decode()}</dmrpp:compact>")
        return
    if layout == h5py.h5d.CONTIGUOUS:
        offset = dataset.id.get_offset()
        if offset is None:
            return
        lines.append(f'{pad}<dmrpp:chunks byteOrder="{order}">')
        lines.append(f'{pad}    <dmrpp:chunk offset="{offset}" nBytes="{dataset.id.get_storage_size()}"/>')
        lines.append(f"{pad}</dmrpp:chunks>")
        return
    filters = [f for f, on in (("shuffle", dataset.shuffle), ("deflate", dataset.compression == "gzip"),
                               ("fletcher32", dataset.fletcher32)) if on]  # fmt: skip
    settings = f' compressionType="{" ".join(filters)}"' if filters else ""
    if "deflate" in filters:
        settings += f' deflateLevel="{dataset.compression_opts}"'
    lines.append(f'{pad}<dmrpp:chunks{settings} byteOrder="{order}">')
    lines.append(
        f"{pad}    <dmrpp:chunkDimensionSizes>{' '.join(map(str, dataset.chunks))}</dmrpp:chunkDimensionSizes>"
    )
    for i in range(dataset.id.get_num_chunks()):
        info = dataset.id.get_chunk_info(i)
        position = ",".join(str(int(c)) for c in info.chunk_offset)
        where = f'offset="{info.byte_offset}" nBytes="{info.size}"'
        lines.append(f'{pad}    <dmrpp:chunk {where} chunkPositionInArray="[{position}]"/>')
    lines.append(f"{pad}</dmrpp:chunks>")
