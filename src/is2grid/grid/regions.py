"""Named sea-ice regions of both hemispheres, user polygons and boxes: which cells or segments lie inside.

Antarctic sectors: Parkinson, C. L. and Cavalieri, D. J. (2012), Antarctic sea ice variability and
trends, 1979-2010, The Cryosphere 6, 871-880, doi:10.5194/tc-6-871-2012 (their Figure 1): the
Southern Ocean split by longitude into the Weddell Sea (60 W-20 E), Indian Ocean (20-90 E), Western
Pacific Ocean (90-160 E), Ross Sea (160 E-130 W) and Bellingshausen/Amundsen Seas (130-60 W).

Arctic regions: named after the NSIDC Sea Ice Regional Mask, NSIDC-0780 (Meier, W. N. and Stewart,
J. S. (2023), NSIDC Sea Ice Regional Mask for the Arctic, doi:10.5067/CYW3O8ZUNIWC). NSIDC
distributes those regions as raster masks; the ones here are **longitude/latitude boxes that
approximate them** (edges to a few degrees), good for searches, quick looks and time series of
broad regions. For the exact regions pass NSIDC-0780's polygons as GeoJSON to :func:`region`.

Any shapely geometry or GeoJSON (lon/lat, EPSG:4326) and any ``(lon_min, lat_min, lon_max,
lat_max)`` box work too. The antimeridian is crossed in every spelling: a box with ``lon_min >
lon_max`` (170, ..., -170, ...) or with longitudes past 180 (170, ..., 190, ...), and a polygon whose
edge jumps by more than 180 degrees of longitude (170 -> -170 is the 20 degrees across 180, not the
340 degrees the other way round) or that goes past 180. A ring that winds once around a pole (its
longitudes run through all 360 degrees) holds that pole. Invalid polygons (self-intersecting),
latitudes outside -90..90 (swapped coordinates: GeoJSON is longitude first) and a region of the
other hemisphere than the grid's are errors, never an empty time series.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from is2grid.errors import GridError

__all__ = ["REGIONS", "Region", "region"]

_PARKINSON = "Parkinson and Cavalieri (2012), The Cryosphere 6, 871-880, doi:10.5194/tc-6-871-2012"
_NSIDC = "box approximating the NSIDC-0780 region (Meier and Stewart 2023, doi:10.5067/CYW3O8ZUNIWC)"


@dataclass(frozen=True)
class Region:
    """A named area in longitude/latitude: a box, or any shapely geometry.

    Examples
    --------
    >>> ross = REGIONS["ross"]
    >>> ross.title, ross.hemisphere, ross.bbox
    ('Ross Sea', 'south', (160.0, -90.0, -130.0, -50.0))
    >>> ross.contains(np.array([170.0, -170.0, 0.0]), np.array([-75.0, -75.0, -75.0]))
    array([ True,  True, False])
    """

    name: str
    title: str
    bbox: tuple[float, float, float, float]
    """(lon_min, lat_min, lon_max, lat_max) that holds the region (the region itself for a box)."""
    hemisphere: str | None = None
    source: str = "user"
    geometry: Any = None
    """A shapely geometry in lon/lat, or None for a box."""

    def contains(self, lon, lat) -> np.ndarray:
        """Whether each (lon, lat) point lies in the region (vectorised; NaN is outside)."""
        lon, lat = np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64)
        lon = (lon + 180.0) % 360.0 - 180.0
        lon_min, lat_min, lon_max, lat_max = self.bbox
        inside = (lat >= lat_min) & (lat <= lat_max)
        if lon_min <= lon_max:
            inside &= (lon >= lon_min) & (lon <= lon_max)
        else:
            inside &= (lon >= lon_min) | (lon <= lon_max)
        if self.geometry is not None and inside.any():
            import shapely

            # the geometry's longitudes may run past +-180 (unwrapped across the antimeridian): try each turn
            x, y = lon[inside], lat[inside]
            hit = np.zeros(x.shape, bool)
            for turn in (-360.0, 0.0, 360.0):
                hit |= shapely.intersects_xy(self.geometry, x + turn, y)  # the boundary is in, as for boxes
            inside[inside] = hit
        return inside

    def check_hemisphere(self, hemisphere: str | None) -> None:
        """Raise :class:`~is2grid.GridError` if the region lies wholly in the other hemisphere than ``hemisphere``."""
        if hemisphere in ("north", "south") and self.hemisphere in ("north", "south") and hemisphere != self.hemisphere:
            raise GridError(
                f"region {self.name!r} ({self.title}) lies in the {self.hemisphere}ern hemisphere, but the data is "
                f"gridded on the {hemisphere}ern grid. Choose a region of the {hemisphere} (named ones: "
                f"{', '.join(n for n, r in REGIONS.items() if r.hemisphere == hemisphere)}), or check that its "
                "coordinates are (longitude, latitude)."
            )


def _box(name, title, lon_min, lon_max, lat_min, lat_max, hemisphere, source) -> Region:
    return Region(name, title, (float(lon_min), float(lat_min), float(lon_max), float(lat_max)), hemisphere, source)


#: The named regions, by name.
REGIONS: dict[str, Region] = {
    r.name: r
    for r in (
        _box("weddell", "Weddell Sea", -60, 20, -90, -50, "south", _PARKINSON),
        _box("indian", "Indian Ocean", 20, 90, -90, -50, "south", _PARKINSON),
        _box("western_pacific", "Western Pacific Ocean", 90, 160, -90, -50, "south", _PARKINSON),
        _box("ross", "Ross Sea", 160, -130, -90, -50, "south", _PARKINSON),
        _box("bellingshausen_amundsen", "Bellingshausen and Amundsen Seas", -130, -60, -90, -50, "south", _PARKINSON),
        _box("southern_ocean", "Southern Ocean (all sectors)", -180, 180, -90, -50, "south", _PARKINSON),
        _box("central_arctic", "Central Arctic", -180, 180, 80, 90, "north", _NSIDC),
        _box("beaufort", "Beaufort Sea", -156, -125, 68, 80, "north", _NSIDC),
        _box("chukchi", "Chukchi Sea", 175, -156, 66, 80, "north", _NSIDC),
        _box("east_siberian", "East Siberian Sea", 140, 175, 68, 80, "north", _NSIDC),
        _box("laptev", "Laptev Sea", 100, 140, 70, 80, "north", _NSIDC),
        _box("kara", "Kara Sea", 60, 100, 66, 80, "north", _NSIDC),
        _box("barents", "Barents Sea", 15, 60, 66, 80, "north", _NSIDC),
        _box("greenland", "East Greenland Sea", -45, 15, 60, 80, "north", _NSIDC),
        _box("baffin", "Baffin Bay and Davis Strait", -80, -50, 60, 80, "north", _NSIDC),
        _box("canadian_archipelago", "Canadian Arctic Archipelago", -125, -80, 68, 80, "north", _NSIDC),
        _box("hudson", "Hudson Bay", -95, -65, 50, 68, "north", _NSIDC),
        _box("st_lawrence", "Gulf of St. Lawrence", -70, -56, 45, 52, "north", _NSIDC),
        _box("bering", "Bering Sea", 160, -157, 52, 66, "north", _NSIDC),
        _box("okhotsk", "Sea of Okhotsk", 135, 160, 43, 62, "north", _NSIDC),
    )
}


def region(spec: Any) -> Region:
    """A :class:`Region` from a name, a box, a shapely geometry, GeoJSON (dict, text or file) or a Region.

    Examples
    --------
    >>> region("ross").title
    'Ross Sea'
    >>> region((-60, -80, -30, -60)).bbox
    (-60.0, -80.0, -30.0, -60.0)
    >>> region({"type": "Polygon", "coordinates": [[[0, -70], [10, -70], [10, -60], [0, -70]]]}).bbox
    (0.0, -70.0, 10.0, -60.0)
    """
    if isinstance(spec, Region):
        return spec
    if isinstance(spec, str) and spec.lower().replace("-", "_").replace(" ", "_") in REGIONS:
        return REGIONS[spec.lower().replace("-", "_").replace(" ", "_")]
    if isinstance(spec, tuple | list) and len(spec) == 4 and all(isinstance(v, int | float) for v in spec):
        lon_min, lat_min, lon_max, lat_max = (float(v) for v in spec)
        if not (-90 <= lat_min < lat_max <= 90 and -180 <= lon_min <= 360 and -180 <= lon_max <= 360):
            swapped = " (it looks like (lat, lon, ...): the order is lon, lat)" if abs(lat_max) > 90 else ""
            raise GridError(
                f"region box {tuple(spec)!r}: expected (lon_min, lat_min, lon_max, lat_max) in degrees, latitudes "
                f"in -90..90 and lat_min < lat_max{swapped}."
            )
        if lon_max - lon_min >= 360:
            lon_min, lon_max = -180.0, 180.0
        else:
            lon_min, lon_max = (_wrap(lon_min), _wrap(lon_max)) if max(lon_min, lon_max) > 180 else (lon_min, lon_max)
        bbox = (lon_min, lat_min, lon_max, lat_max)
        return Region("box", f"lon {lon_min:g}..{lon_max:g}, lat {lat_min:g}..{lat_max:g}", bbox, _hemisphere(bbox))
    geometry = _geometry(spec)
    if geometry is None:
        raise GridError(
            f"region={spec!r}: not a region name, box, shapely geometry or GeoJSON. Named regions: "
            f"{', '.join(REGIONS)}; a box is (lon_min, lat_min, lon_max, lat_max)."
        )
    geometry, bbox = _on_the_sphere(geometry)
    return Region("polygon", "user polygon", bbox, _hemisphere(bbox), "user", geometry)


def _wrap(lon: float) -> float:
    return (lon + 180.0) % 360.0 - 180.0 if lon != 180.0 else 180.0


def _on_the_sphere(geometry: Any) -> tuple[Any, tuple[float, float, float, float]]:
    """A lon/lat geometry read on the sphere: checked, rings unwrapped across 180, polar rings closed by their pole.

    Returns the geometry (longitudes may run past +-180 where it crosses the antimeridian) and its
    bounding box in -180..180 (``lon_min > lon_max`` when it crosses).
    """
    import shapely
    import shapely.geometry
    from shapely.validation import explain_validity

    x_min, y_min, x_max, y_max = (float(v) for v in geometry.bounds)
    if not (-90 <= y_min and y_max <= 90):
        swapped = -90 <= x_min and x_max <= 90
        raise GridError(
            f"region polygon: latitudes {y_min:g}..{y_max:g} lie outside -90..90"
            + (" and its longitudes look like latitudes: are the coordinates (lat, lon)? GeoJSON and shapely take "
               "(lon, lat)." if swapped else ".")
        )  # fmt: skip
    polygons = list(getattr(geometry, "geoms", [geometry]))
    if not all(isinstance(p, shapely.geometry.Polygon) for p in polygons):
        raise GridError(f"region: a {geometry.geom_type} has no area; give a Polygon or MultiPolygon in (lon, lat).")
    fixed = [
        shapely.geometry.Polygon(_ring(p.exterior.coords), [_ring(r.coords) for r in p.interiors]) for p in polygons
    ]
    result = fixed[0] if len(fixed) == 1 else shapely.geometry.MultiPolygon(fixed)
    if not result.is_valid:
        raise GridError(
            f"region polygon is not valid ({explain_validity(result)}): its edges cross. Give the ring's corners in "
            "order around it (shapely.make_valid can repair it)."
        )
    x_min, y_min, x_max, y_max = (float(v) for v in result.bounds)
    if x_max - x_min >= 360:
        bbox = (-180.0, y_min, 180.0, y_max)
    elif x_min < -180 or x_max > 180:
        bbox = (_wrap(x_min), y_min, _wrap(x_max), y_max)
    else:
        bbox = (x_min, y_min, x_max, y_max)
    return result, bbox


def _ring(coords) -> list[tuple[float, float]]:
    """A ring with each edge taken the short way round (jumps over 180 degrees cross the antimeridian).

    A ring that then winds once around the globe holds a pole: it is closed along the pole's parallel.
    """
    points = np.asarray(coords, dtype=np.float64)[:, :2]
    lon, lat = points[:, 0].copy(), points[:, 1]
    steps = np.diff(lon)
    steps = (steps + 180.0) % 360.0 - 180.0
    steps[np.isclose(np.abs(np.diff(lon)), 180.0)] = np.diff(lon)[np.isclose(np.abs(np.diff(lon)), 180.0)]
    unwrapped = np.concatenate([[lon[0]], lon[0] + np.cumsum(steps)])
    turns = round((unwrapped[-1] - unwrapped[0]) / 360.0)
    ring = list(zip(unwrapped, lat, strict=True))
    if turns:
        pole = -90.0 if np.mean(lat) < 0 else 90.0
        ring = [*ring, (unwrapped[-1], pole), (unwrapped[0], pole)]
    return ring


def _hemisphere(bbox: tuple[float, float, float, float]) -> str | None:
    """The hemisphere a (lon_min, lat_min, lon_max, lat_max) box lies in, None if it spans the equator."""
    return "south" if bbox[3] <= 0 else "north" if bbox[1] >= 0 else None


def _geometry(spec: Any) -> Any:
    import shapely
    import shapely.geometry

    if isinstance(spec, shapely.Geometry):
        return spec
    if isinstance(spec, str | os.PathLike) and not str(spec).lstrip().startswith("{"):
        path = Path(spec)
        if not path.is_file():
            return None
        spec = path.read_text()
    if isinstance(spec, str):
        try:
            spec = json.loads(spec)
        except ValueError:
            return None
    if not isinstance(spec, dict):
        return None
    if spec.get("type") == "FeatureCollection":
        return shapely.union_all([shapely.geometry.shape(f["geometry"]) for f in spec["features"]])
    if spec.get("type") == "Feature":
        spec = spec["geometry"]
    try:
        return shapely.geometry.shape(spec)
    except (KeyError, ValueError, TypeError, AttributeError):
        return None
