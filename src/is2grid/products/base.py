"""The product seam: what the engine, the gridder, the store and the tutorial ask of a product.

A :class:`Product` is plain data plus the schema it carries (a JSON table extracted from a real granule by
``tools/extract_schema.py``, because h5coro cannot read the attributes of real granules). Nothing here
reads granules; adding a product is one module that builds a :class:`Product`.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import numpy as np

from is2grid.errors import GridError
from is2grid.products import icesat2

__all__ = ["Product", "decode_attr"]

#: the four statistics of every gridded variable, by role, in the order the reduction returns them
ROLES = ("count", "mean_length", "mean", "std")


def decode_attr(value: Any) -> Any:
    """An attribute value as stored in the schema JSON, back to its numpy type."""
    if isinstance(value, dict) and "dtype" in value:
        if "values" in value:
            return np.array(value["values"], dtype=value["dtype"])
        return np.array(value["value"], dtype=value["dtype"])[()]
    return value


@functools.cache
def _schema(file: str) -> dict[str, Any]:
    return json.loads(resources.files("is2grid.products").joinpath(file).read_text())


@dataclass(frozen=True)
class Product:
    """One ICESat-2 along-track product as is2grid reads and grids it.

    Attributes
    ----------
    name : str
        ``"ATL10"``, ``"ATL07"``: the engine is its lower-case name.
    title : str
        What the product holds, for the opened Dataset's ``title``.
    segment_group : str
        The per-segment group under each beam (``freeboard_segment``, ``sea_ice_segments``).
    segment_subgroups : tuple of str
        Its subgroups whose per-segment variables are flattened into the Dataset.
    beam_groups : dict
        Every group of a beam the datatree opens, with the name of its row dimension.
    fixed_dims : dict
        Variables of the beam groups that are not per-row (histograms), with their dimension.
    default_variables : tuple of str
        What ``open_dataset`` reads besides the coordinates.
    variable : str
        What ``to_ease2`` grids by default.
    stems : dict
        Short names of variables in the statistics' names (``beam_fb_height`` -> ``mean_fb``).
    quality_flag : str
        The flag ``max_quality`` keeps ``1 <= flag <= max_quality`` of.
    """

    name: str
    title: str
    segment_group: str
    segment_subgroups: tuple[str, ...]
    beam_groups: dict[str, str]
    fixed_dims: dict[str, str]
    default_variables: tuple[str, ...]
    variable: str
    stems: dict[str, str]
    described: dict[str, dict[str, str]]
    quality_flag: str
    schema_file: str
    segment_type: str = "height_segment_type"
    length: str = "height_segment_length_seg"
    legacy_groups: dict[str, str] = field(default_factory=dict)
    releases: str = ""

    # --- the schema ---------------------------------------------------------------------------

    def schema(self) -> dict[str, Any]:
        """The carried schema table."""
        return _schema(self.schema_file)

    def schema_entry(self, path: str) -> dict[str, Any] | None:
        """The schema record of a dataset, ``path`` relative to the file root, beams as ``{beam}``."""
        return self.schema()["datasets"].get(path)

    def dataset_paths(self) -> list[str]:
        """Every dataset path the schema knows, beams written as ``{beam}``."""
        return sorted(self.schema()["datasets"])

    def group_attrs(self, path: str) -> dict[str, Any]:
        """Attributes of a group as stored in real granules (beam groups: :meth:`beam_attrs`)."""
        return {k: decode_attr(v) for k, v in self.schema()["groups"].get(path, {}).items()}

    def root_attrs(self) -> dict[str, Any]:
        """Root attributes of the granule the schema was extracted from."""
        return {k: decode_attr(v) for k, v in self.schema()["root_attrs"].items()}

    def variable_attrs(self, path: str) -> dict[str, Any]:
        """CF attributes (units, long_name, _FillValue, flags, valid range...) of a dataset."""
        entry = self.schema_entry(path)
        if entry is None:
            return {}
        return {k: decode_attr(v) for k, v in entry["attrs"].items()}

    def variable_dtype(self, path: str) -> np.dtype:
        """The stored dtype of a dataset."""
        entry = self.schema_entry(path)
        if entry is None:
            raise KeyError(path)
        return np.dtype(entry["dtype"])

    def beam_attrs(self, beam: str, sc_orient: int) -> dict[str, Any]:
        """The attributes of beam group ``beam`` in a granule of spacecraft orientation ``sc_orient``.

        The laser spot follows the orientation (:func:`is2grid.products.icesat2.beam_spot`); strong spots
        are 1, 3 and 5; the photon-counting electronics and atmosphere profile serve a pair of spots
        (1-2, 3-4, 5-6). Checked against real backward-orientation granules (ATL10 and ATL07).
        """
        spot = icesat2.beam_spot(beam, sc_orient)
        pair = (spot + 1) // 2
        attrs = self.group_attrs("{beam}")
        attrs.update(
            atlas_beam_type="strong" if spot % 2 else "weak",
            atlas_pce=f"pce{pair}",
            atlas_spot_number=str(spot),
            atmosphere_profile=f"profile_{pair}",
            groundtrack_id=beam,
            sc_orientation={0: "Backward", 1: "Forward"}.get(sc_orient, "Transition"),
        )
        return attrs

    @functools.cached_property
    def segment_variables(self) -> dict[str, str]:
        """Flat variable name -> path below the beam group, for every per-segment variable.

        The segment group itself wins over its subgroups for the names they repeat (latitude,
        longitude, delta_time); histograms (``fixed_dims``) are not per-segment.
        """
        names: dict[str, str] = {}
        prefix = "{beam}/" + self.segment_group + "/"
        for sub in ("", *(s + "/" for s in self.segment_subgroups)):
            for path in self.dataset_paths():
                rest = path[len(prefix + sub) :] if path.startswith(prefix + sub) else None
                if rest and "/" not in rest and rest not in names and rest not in self.fixed_dims:
                    names[rest] = path[len("{beam}/") :]
        return names

    # --- file names -----------------------------------------------------------------------------

    @functools.cached_property
    def granule_name(self) -> re.Pattern[str]:
        """``ATLnn-HH_yyyymmddhhmmss_ttttccss_vvv_rr.h5``, HH 01 Arctic / 02 Antarctic, optional ``processed_``."""
        return re.compile(
            rf"^(?:processed_)?{self.name}-(?P<hemi>0[12])_(?P<time>\d{{14}})_(?P<rgt>\d{{4}})(?P<cycle>\d{{2}})"
            r"(?P<region>\d{2})_(?P<version>\d{3})_(?P<revision>\d{2})\.h5$"
        )

    def matches(self, name: str) -> bool:
        """Whether a path or URL names a granule of this product."""
        return self.granule_name.match(icesat2.file_name(name)) is not None

    def hemisphere_from_name(self, name: str) -> str | None:
        """'north' or 'south' from a file name of this product, None for another name."""
        match = self.granule_name.match(icesat2.file_name(name))
        if match is None:
            return None
        return "north" if match["hemi"] == "01" else "south"

    def start_time_from_name(self, name: str) -> np.datetime64 | None:
        """The UTC start time in a file name of this product, None for another name."""
        match = self.granule_name.match(icesat2.file_name(name))
        if match is None:
            return None
        t = match["time"]
        return np.datetime64(f"{t[:4]}-{t[4:6]}-{t[6:8]}T{t[8:10]}:{t[10:12]}:{t[12:14]}")

    def granule_identity(self, name: str) -> str:
        """What makes two files the same granule: product, hemisphere, start time, RGT, cycle, region.

        The release and revision, a subsetter's ``processed_`` prefix and the folder or URL do not count.
        """
        base = icesat2.file_name(name)
        match = self.granule_name.match(base)
        if match is None:
            return base
        return f"{self.name}-{match['hemi']}_{match['time']}_{match['rgt']}{match['cycle']}{match['region']}"

    def hemisphere_of_names(self, names) -> str:
        """The one hemisphere of a set of granule names (-01 north, -02 south)."""
        found = {self.hemisphere_from_name(name) for name in names} - {None}  # renamed files tell nothing
        if found in ({"north"}, {"south"}):
            return str(found.pop())
        if {"north", "south"} <= found:
            raise GridError(
                f"the granules mix {self.name}-01 (Arctic) and {self.name}-02 (Antarctic): grid each hemisphere "
                "separately."
            )
        raise GridError("cannot tell the hemisphere from the file names: pass hemisphere='north' or 'south'.")

    # --- gridding -------------------------------------------------------------------------------

    def stem(self, variable: str) -> str:
        """The short name of ``variable`` in the statistics' names: ``mean_<stem>``, ``std_<stem>``."""
        return self.stems.get(variable, variable)

    def statistics(
        self, variable: str | None = None, attrs: dict[str, Any] | None = None
    ) -> dict[str, tuple[str, dict[str, str]]]:
        """Role -> (name, CF attributes) of the four gridded statistics of ``variable``.

        ``attrs``: the variable's own attributes, for a derived variable the product does not store
        (its ``long_name``, ``units`` and ``standard_name`` describe the statistics).

        Examples
        --------
        >>> from is2grid.products import ATL07
        >>> [name for name, _ in ATL07.statistics("height_segment_rms").values()]
        ['n_segments', 'mean_seg_length', 'mean_height_segment_rms', 'std_height_segment_rms']
        """
        variable = variable or self.variable
        stem = self.stem(variable)
        given = attrs is not None
        if attrs is None:
            attrs = self.variable_attrs("{beam}/" + self.segment_variables.get(variable, ""))
            described = self.described.get(variable, {})
        else:
            described = {k: str(attrs[k]) for k in ("long_name", "standard_name") if k in attrs}
        what = described.get("long_name") or str(attrs.get("long_name", variable))
        units = _cf_units(str(attrs.get("units", "1")))
        mean = {"long_name": f"length-weighted mean {what}", "units": units}
        if "standard_name" in described:
            mean["standard_name"] = described["standard_name"]
        # a derived variable's provenance (how thickness was made) travels to its statistics
        provenance: dict[str, str] = {
            k: str(attrs[k]) for k in ("source", "method", "constants") if given and k in attrs
        }
        return {
            "count": (
                "n_segments",
                {
                    "long_name": described.get("count", f"number of {self.name} segments in the cell"),
                    "units": "1",
                    "cell_methods": "time: sum area: sum",
                },
            ),
            "mean_length": (
                "mean_seg_length",
                {"long_name": "mean segment length", "units": "m", "cell_methods": "time: mean area: mean"},
            ),
            "mean": (
                f"mean_{stem}",
                {**mean, "cell_methods": "time: mean area: mean (weighted by segment length)", **provenance},
            ),
            "std": (
                f"std_{stem}",
                {
                    "long_name": f"length-weighted standard deviation of {what}",
                    "units": units,
                    "cell_methods": "time: standard_deviation area: standard_deviation (weighted by segment length)",
                    **provenance,
                },
            ),
        }


def _cf_units(units: str) -> str:
    """The product's units spelled as CF/UDUNITS spells them (the products write ``meters``)."""
    return {"meters": "m", "meter": "m", "degrees": "degree", "counts": "1"}.get(units, units)
