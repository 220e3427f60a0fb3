"""What every ICESat-2 along-track product shares: beams, spacecraft orientation, time, file names.

No I/O here; each product (:mod:`is2grid.products.atl10`, :mod:`is2grid.products.atl07`) adds its own
groups, variables and schema on top.
"""

from __future__ import annotations

import numpy as np

from is2grid.errors import GridError

__all__ = [
    "ATLAS_EPOCH",
    "BEAMS",
    "COORDINATES",
    "ORIENTATIONS",
    "TIME",
    "TIME_UNITS",
    "beams_for",
    "file_name",
    "hemisphere_of_dataset",
    "seconds_since_epoch",
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
#: the coordinates of every segment, in the order the engines list them
COORDINATES = ("latitude", "longitude", "delta_time")
TIME = "delta_time"
#: the scalars every ATL07/ATL10 granule has at its root, read when it is opened
ROOT_SCALARS = {
    "sc_orient": "orbit_info/sc_orient",
    "rgt": "orbit_info/rgt",
    "cycle_number": "orbit_info/cycle_number",
    "orbit_number": "orbit_info/orbit_number",
    "release": "ancillary_data/release",
    "revision": "ancillary_data/version",
}


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


def beam_spot(beam: str, sc_orient: int) -> int:
    """The ATLAS laser spot (1-6) of a ground track: backward gt1l is spot 1 ... gt3r spot 6, forward reversed.

    Examples
    --------
    >>> beam_spot("gt1l", 0), beam_spot("gt1l", 1)
    (1, 6)
    """
    spot = BEAMS.index(beam) + 1
    return 7 - spot if sc_orient == 1 else spot


def file_name(path: str) -> str:
    """The file name of a path or URL, without folders and query string.

    Examples
    --------
    >>> file_name("https://host/ATLAS/ATL10-02_20190915000000_12340401_006_01.h5?token=x")
    'ATL10-02_20190915000000_12340401_006_01.h5'
    """
    return path.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]


def seconds_since_epoch(utc) -> np.ndarray:
    """UTC datetimes to ``delta_time`` seconds (the inverse of CF-decoding ``delta_time``).

    Examples
    --------
    >>> seconds_since_epoch(np.datetime64("2018-01-02T00:00:00"))
    array(86400.)
    """
    return np.asarray((np.asarray(utc, dtype="datetime64[ns]") - ATLAS_EPOCH) / np.timedelta64(1, "s"))


def hemisphere_of_dataset(ds) -> str:
    """'north' or 'south': the ``hemisphere`` attribute the engines set, or else the latitudes' sign.

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
            "the Dataset mixes granules of both hemispheres. Grid each separately: open the -01 (Arctic) "
            "and -02 (Antarctic) granules apart, or pass hemisphere= and filter by latitude."
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
