"""ATL10 product knowledge: beams, variable names, the carried schema, granule names.

Nothing here does I/O on granules; the schema table is a JSON file shipped with the package,
extracted from a real v006 granule by ``tools/extract_schema.py`` because h5coro cannot read the
attributes of real granules.
"""

from __future__ import annotations

import functools
import json
import re
from importlib import resources
from typing import Any

import numpy as np

from is2grid.errors import GridError

__all__ = [
    "ATLAS_EPOCH",
    "BEAMS",
    "DEFAULT_VARIABLES",
    "GRANULE_NAME",
    "TIME_UNITS",
    "beam_attrs",
    "beams_for",
    "decode_attr",
    "file_name",
    "granule_identity",
    "hemisphere_from_name",
    "hemisphere_of_dataset",
    "hemisphere_of_names",
    "seconds_since_epoch",
    "segment_variable_paths",
    "start_time_from_name",
    "variable_attrs",
    "variable_dtype",
]

#: ``delta_time`` counts GPS seconds from this UTC instant; with GPS - UTC fixed at 18 s since 2017 the CF
#: units "seconds since 2018-01-01" decode to UTC exactly (see the README's design decisions on time)
ATLAS_EPOCH = np.datetime64("2018-01-01T00:00:00", "ns")
TIME_UNITS = "seconds since 2018-01-01"

BEAMS = ("gt1l", "gt1r", "gt2l", "gt2r", "gt3l", "gt3r")
STRONG_BEAMS = {0: ("gt1l", "gt2l", "gt3l"), 1: ("gt1r", "gt2r", "gt3r")}
WEAK_BEAMS = {0: ("gt1r", "gt2r", "gt3r"), 1: ("gt1l", "gt2l", "gt3l")}
ORIENTATIONS = {0: "backward", 1: "forward", 2: "transition"}
#: ``ancillary_data/start_region`` of ATL07/ATL10 granules: the hemisphere, as the 01/02 in the file name
REGION_HEMISPHERES = {1: "north", 2: "south"}

SEGMENT_GROUP = "freeboard_segment"
SEGMENT_SUBGROUPS = ("heights", "geophysical")
BEAM_GROUPS = {"freeboard_segment": "segment", "leads": "lead", "reference_surface_section": "section"}
COORDINATES = ("latitude", "longitude", "delta_time")
TIME = "delta_time"
DEFAULT_VARIABLES = (
    "beam_fb_height",
    "beam_fb_unc",
    "beam_fb_quality_flag",
    "beam_fb_confidence",
    "height_segment_id",
    "seg_dist_x",
    "height_segment_length_seg",
    "height_segment_type",
    "height_segment_ssh_flag",
)
#: The layout of ATL10 release 005 and older, recognised only to reject it clearly.
LEGACY_SEGMENT_GROUP = "freeboard_beam_segment"

#: ``ATL10-HH_yyyymmddhhmmss_ttttccss_vvv_rr.h5``, HH 01 Arctic / 02 Antarctic, optional subsetter prefix.
GRANULE_NAME = re.compile(
    r"^(?:processed_)?ATL10-(?P<hemi>0[12])_(?P<time>\d{14})_(?P<rgt>\d{4})(?P<cycle>\d{2})(?P<region>\d{2})"
    r"_(?P<version>\d{3})_(?P<revision>\d{2})\.h5$"
)


@functools.cache
def _schema() -> dict[str, Any]:
    text = resources.files("is2grid").joinpath("atl10_schema.json").read_text()
    return json.loads(text)


def decode_attr(value: Any) -> Any:
    """An attribute value as stored in the schema JSON, back to its numpy type."""
    if isinstance(value, dict) and "dtype" in value:
        if "values" in value:
            return np.array(value["values"], dtype=value["dtype"])
        return np.array(value["value"], dtype=value["dtype"])[()]
    return value


def schema_entry(path: str) -> dict[str, Any] | None:
    """The schema record of a dataset, ``path`` relative to the file root, beams as ``{beam}``."""
    return _schema()["datasets"].get(path)


def dataset_paths() -> list[str]:
    """Every dataset path the schema knows, beams written as ``{beam}``."""
    return sorted(_schema()["datasets"])


def group_attrs(path: str) -> dict[str, Any]:
    """Attributes of a group as stored in real granules (``{beam}`` for beam groups: see :func:`beam_attrs`)."""
    return {k: decode_attr(v) for k, v in _schema()["groups"].get(path, {}).items()}


def beam_attrs(beam: str, sc_orient: int) -> dict[str, Any]:
    """The attributes of beam group ``beam`` in a granule of spacecraft orientation ``sc_orient``.

    The laser spot follows the orientation (backward: gt1l is spot 1 ... gt3r spot 6; forward: reversed);
    strong spots are 1, 3 and 5; the photon-counting electronics and atmosphere profile serve a pair of
    spots (1-2, 3-4, 5-6). Checked against real backward-orientation granules (ATL10 and ATL07).

    Examples
    --------
    >>> {k: v for k, v in beam_attrs("gt1r", 1).items() if k != "Description"}  # doctest: +NORMALIZE_WHITESPACE
    {'atlas_beam_type': 'strong', 'atlas_pce': 'pce3', 'atlas_spot_number': '5', 'atmosphere_profile': 'profile_3',
     'groundtrack_id': 'gt1r', 'sc_orientation': 'Forward'}
    """
    spot = BEAMS.index(beam) + 1
    if sc_orient == 1:
        spot = 7 - spot
    pair = (spot + 1) // 2
    attrs = group_attrs("{beam}")
    attrs.update(
        atlas_beam_type="strong" if spot % 2 else "weak",
        atlas_pce=f"pce{pair}",
        atlas_spot_number=str(spot),
        atmosphere_profile=f"profile_{pair}",
        groundtrack_id=beam,
        sc_orientation={0: "Backward", 1: "Forward"}.get(sc_orient, "Transition"),
    )
    return attrs


def root_attrs() -> dict[str, Any]:
    """Root attributes of the granule the schema was extracted from."""
    return {k: decode_attr(v) for k, v in _schema()["root_attrs"].items()}


def variable_attrs(path: str) -> dict[str, Any]:
    """CF attributes (units, long_name, _FillValue, flags, valid range...) of a dataset.

    Examples
    --------
    >>> variable_attrs("{beam}/freeboard_segment/beam_fb_height")["units"]
    'meters'
    """
    entry = schema_entry(path)
    if entry is None:
        return {}
    return {k: decode_attr(v) for k, v in entry["attrs"].items()}


def variable_dtype(path: str) -> np.dtype:
    """The stored dtype of a dataset."""
    entry = schema_entry(path)
    if entry is None:
        raise KeyError(path)
    return np.dtype(entry["dtype"])


@functools.cache
def segment_variable_paths() -> dict[str, str]:
    """Flat variable name -> path below the beam group, for every per-segment variable.

    ``freeboard_segment`` itself wins over its ``heights/`` and ``geophysical/`` subgroups for the
    names they repeat (latitude, longitude, delta_time).

    Examples
    --------
    >>> segment_variable_paths()["height_segment_length_seg"]
    'freeboard_segment/heights/height_segment_length_seg'
    """
    names: dict[str, str] = {}
    prefix = "{beam}/" + SEGMENT_GROUP + "/"
    for sub in ("", *(s + "/" for s in SEGMENT_SUBGROUPS)):
        for path in dataset_paths():
            rest = path[len(prefix + sub) :] if path.startswith(prefix + sub) else None
            if rest and "/" not in rest and rest not in names:
                names[rest] = path[len("{beam}/") :]
    return names


def beams_for(sc_orient: int, beams: str | list[str] | tuple[str, ...]) -> tuple[list[str], bool]:
    """Resolve a ``beams=`` request against the spacecraft orientation.

    Returns the beam names and whether the request was undefined for this orientation
    (strong or weak beams of a transition granule), in which case the list is empty.

    Examples
    --------
    >>> beams_for(0, "strong")
    (['gt1l', 'gt2l', 'gt3l'], False)
    >>> beams_for(2, "strong")
    ([], True)
    """
    if isinstance(beams, str) and beams in ("strong", "weak", "all"):
        if beams == "all":
            return list(BEAMS), False
        table = STRONG_BEAMS if beams == "strong" else WEAK_BEAMS
        if sc_orient not in table:
            return [], True
        return list(table[sc_orient]), False
    requested = [beams] if isinstance(beams, str) else list(beams)
    unknown = [b for b in requested if b not in BEAMS]
    if unknown or not requested:
        raise ValueError(
            f"beams={beams!r}: unknown beam name(s) {unknown}. Use 'strong', 'weak', 'all' or a list of {list(BEAMS)}."
        )
    return list(dict.fromkeys(requested)), False


def hemisphere_from_name(name: str) -> str | None:
    """'north' or 'south' from an ATL10 file name, None if the name is not an ATL10 name.

    Examples
    --------
    >>> hemisphere_from_name("processed_ATL10-02_20190915000000_12340501_006_01.h5")
    'south'
    """
    match = GRANULE_NAME.match(name.rsplit("/", 1)[-1])
    if match is None:
        return None
    return "north" if match["hemi"] == "01" else "south"


def file_name(path: str) -> str:
    """The file name of a path or URL, without folders and query string.

    Examples
    --------
    >>> file_name("https://host/ATLAS/ATL10-02_20190915000000_12340401_006_01.h5?token=x")
    'ATL10-02_20190915000000_12340401_006_01.h5'
    """
    return path.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]


def start_time_from_name(name: str) -> np.datetime64 | None:
    """The UTC start time in an ATL10 file name, None if the name is not an ATL10 name.

    Examples
    --------
    >>> start_time_from_name("s3://b/ATL10-02_20190915013045_12340401_006_01.h5")
    np.datetime64('2019-09-15T01:30:45')
    """
    match = GRANULE_NAME.match(file_name(name))
    if match is None:
        return None
    t = match["time"]
    return np.datetime64(f"{t[:4]}-{t[4:6]}-{t[6:8]}T{t[8:10]}:{t[10:12]}:{t[12:14]}")


def granule_identity(name: str) -> str:
    """What makes two granule files the same granule: product, hemisphere, start time, RGT, cycle, region.

    The release and revision, a subsetter's ``processed_`` prefix and the folder or URL do not count, so
    the same granule found twice (two paths, two releases) is recognised.

    Examples
    --------
    >>> granule_identity("s3://b/ATLAS/processed_ATL10-02_20190915000000_12340401_006_01.h5")
    'ATL10-02_20190915000000_12340401'
    >>> granule_identity("/data/ATL10-02_20190915000000_12340401_006_02.h5")
    'ATL10-02_20190915000000_12340401'
    """
    base = file_name(name)
    match = GRANULE_NAME.match(base)
    if match is None:
        return base
    return f"ATL10-{match['hemi']}_{match['time']}_{match['rgt']}{match['cycle']}{match['region']}"


def seconds_since_epoch(utc) -> np.ndarray:
    """UTC datetimes to ``delta_time`` seconds (the inverse of CF-decoding ``delta_time``).

    Examples
    --------
    >>> seconds_since_epoch(np.datetime64("2018-01-02T00:00:00"))
    array(86400.)
    """
    return np.asarray((np.asarray(utc, dtype="datetime64[ns]") - ATLAS_EPOCH) / np.timedelta64(1, "s"))


def hemisphere_of_names(names) -> str:
    """The one hemisphere of a set of ATL10 granule names (ATL10-01 north, ATL10-02 south).

    Examples
    --------
    >>> hemisphere_of_names(["ATL10-02_20190915000000_12340501_006_01.h5"])
    'south'
    """
    found = {hemisphere_from_name(name) for name in names} - {None}  # renamed files tell nothing
    if found in ({"north"}, {"south"}):
        return str(found.pop())
    if {"north", "south"} <= found:
        raise GridError("the granules mix ATL10-01 (Arctic) and ATL10-02 (Antarctic): grid each hemisphere separately.")
    raise GridError("cannot tell the hemisphere from the file names: pass hemisphere='north' or 'south'.")


def hemisphere_of_dataset(ds) -> str:
    """'north' or 'south': the ``hemisphere`` attribute the engine sets, or else the latitudes' sign.

    Raises
    ------
    is2grid.GridError
        For data of both hemispheres, or none.
    """
    hemi = ds.attrs.get("hemisphere")
    if hemi in ("north", "south"):
        return hemi
    if hemi == "mixed":
        raise GridError(
            "the Dataset mixes granules of both hemispheres. Grid each separately: open the ATL10-01 (Arctic) "
            "and ATL10-02 (Antarctic) granules apart, or pass hemisphere= and filter by latitude."
        )
    if "latitude" not in ds.variables:
        raise GridError("cannot tell the hemisphere: no 'hemisphere' attribute and no latitude. Pass hemisphere=.")
    lat = ds["latitude"]
    north, south = bool((lat > 0).any()), bool((lat < 0).any())
    if north and south:
        raise GridError(
            "the Dataset holds segments of both hemispheres. Split it (e.g. ds.where(ds.latitude < 0, drop=True)) "
            "and grid each hemisphere separately."
        )
    if not (north or south):
        raise GridError("cannot tell the hemisphere of an empty Dataset. Pass hemisphere='north' or 'south'.")
    return "north" if north else "south"
