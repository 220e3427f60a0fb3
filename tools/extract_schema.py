"""Regenerate a product schema (``src/is2grid/products/atl10_schema.json``, ``atl07_schema.json``) from a real granule.

h5coro cannot read the attributes of real ATL10 granules (see docs/design.md), so is2grid
carries the product schema itself. This script records, for every dataset of one beam and of
``orbit_info`` / ``ancillary_data``, its dtype, storage layout and CF attributes, plus the
attributes of the beam groups and of the root group.

Usage: ``python tools/extract_schema.py GRANULE.h5 [BEAM] > src/is2grid/products/atlNN_schema.json``
(BEAM: the beam whose groups stand for all six, default gt2l; pick one that holds segments.)
"""

import json
import sys

import h5py
import numpy as np

KEEP_ATTRS = (
    "units",
    "long_name",
    "standard_name",
    "description",
    "_FillValue",
    "flag_values",
    "flag_meanings",
    "valid_min",
    "valid_max",
    "source",
    "contentType",
)


def _value(v):
    if isinstance(v, bytes | np.bytes_):
        return v.decode()
    if isinstance(v, np.ndarray):
        return {"dtype": v.dtype.str, "values": v.tolist()}
    if isinstance(v, np.generic):
        return {"dtype": v.dtype.str, "value": v.item()}
    return v


def _attrs(obj, keep=None):
    return {k: _value(v) for k, v in obj.attrs.items() if keep is None or k in keep}


def _dataset(d):
    plist = d.id.get_create_plist()
    filters = [plist.get_filter(i)[0] for i in range(plist.get_nfilters())]
    return {
        "dtype": d.dtype.str,
        "ndim": d.ndim,
        "trailing_shape": list(d.shape[1:]),
        "chunks": list(d.chunks) if d.chunks else None,
        "deflate": d.compression_opts if d.compression == "gzip" else None,
        "shuffle": 2 in filters,
        "maxshape": [m if m is not None else -1 for m in d.maxshape],
        "attrs": _attrs(d, KEEP_ATTRS),
    }


BEAM = "gt2l"


def main(path):
    out = {"source_granule": path.rsplit("/", 1)[-1], "root_attrs": {}, "groups": {}, "datasets": {}}
    with h5py.File(path) as f:
        out["root_attrs"] = {k: v for k, v in _attrs(f).items() if not isinstance(v, dict)}

        def visit(name, obj):
            parts = name.split("/")
            if parts[0] == "METADATA":
                return
            if parts[0].startswith("gt"):
                if parts[0] != BEAM:
                    return
                name = "/".join(["{beam}", *parts[1:]])
            if isinstance(obj, h5py.Group):
                out["groups"][name] = _attrs(obj)
            else:
                out["datasets"][name] = _dataset(obj)

        f.visititems(visit)
    json.dump(out, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    if len(sys.argv) > 2:
        BEAM = sys.argv[2]
    main(sys.argv[1])
