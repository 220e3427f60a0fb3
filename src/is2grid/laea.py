"""EASE-Grid 2.0's map projection in closed form, in numpy: polar Lambert azimuthal equal-area on WGS84.

EASE-Grid 2.0 North and South (EPSG:6931, EPSG:6932) are the polar aspects of the ellipsoidal
Lambert azimuthal equal-area projection, centred on the pole, with no false easting or northing.
For a point at latitude φ and longitude λ (Snyder 1987, *Map Projections: A Working Manual*,
eqs. 3-12, 24-18 to 24-20):

- ``q(φ) = (1 - e²) [sin φ / (1 - e² sin² φ) + atanh(e sin φ) / e]``, and ``q_p = q(90°)``
- ``ρ = a √(q_p ∓ q(φ))`` (north: minus, south: plus)
- ``x = ρ sin λ``, ``y = ∓ρ cos λ``

``q_p ∓ q(φ)`` is rewritten here in terms of ``1 - t`` (``t`` the sine of the latitude measured
towards the grid's pole), taken from half the colatitude, so that it stays exact near the pole where
the plain difference loses digits. The result matches PROJ to a few nanometres away from the pole
(tested value by value); it is about twice as fast, and a granule's million points are projected
for every gridding.
"""

from __future__ import annotations

import numpy as np

__all__ = ["EASE2_POLES", "polar_laea_xy"]

_A = 6378137.0  # WGS84 semi-major axis (m)
_F = 1 / 298.257223563  # WGS84 flattening
_E2 = _F * (2 - _F)
_E = float(np.sqrt(_E2))

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
    north = pole == "north"
    lon = np.asarray(lon, dtype=np.float64)
    lat = np.asarray(lat, dtype=np.float64)
    # In place, step by step: a granule's arrays are a million points, and each temporary costs a pass.
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
    lam = np.radians(lon)
    with np.errstate(invalid="ignore"):  # an infinite longitude gives NaN, outside every grid
        x = np.sin(lam)
        y = np.cos(lam, out=lam)
    x *= rho
    if north:
        np.negative(rho, out=rho)
    y *= rho
    return x, y
