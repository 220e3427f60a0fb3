"""The Warren et al. (1999) Arctic snow climatology: snow depth and water equivalent as 2-D quadratics.

Warren, S. G., I. G. Rigor, N. Untersteiner, V. F. Radionov, N. N. Bryazgin, Y. I. Aleksandrov and
R. Colony (1999): Snow depth on Arctic sea ice. J. Climate, 12, 1814-1829,
https://doi.org/10.1175/1520-0442(1999)012<1814:SDOASI>2.0.CO;2

Each month's field is ``H = H0 + A x + B y + C x y + D x^2 + E y^2`` with x, y in degrees of latitude
from the pole, the x axis along 0 deg E and the y axis along 90 deg E (Tables 1 and 2 of the paper: depth
in cm, snow water equivalent in cm of water). The fit is to measurements at the Soviet North Pole
drifting stations, 1954-1991, over the Arctic Ocean's multi-year ice; outside that domain it is an
extrapolation (it goes negative over parts of the Kara and Barents Seas in late spring).
"""

from __future__ import annotations

import numpy as np

__all__ = ["DEPTH", "DOMAIN_MIN_LATITUDE", "SWE", "depth_and_density", "polar_xy"]

#: Table 1 of Warren et al. (1999), snow depth (cm): month -> (H0, A, B, C, D, E)
DEPTH = {
    1: (28.01, 0.1270, -1.1833, -0.1164, -0.0051, 0.0243),
    2: (30.28, 0.1056, -0.5908, -0.0263, -0.0049, 0.0044),
    3: (33.89, 0.5486, -0.1996, 0.0280, 0.0216, -0.0176),
    4: (36.80, 0.4046, -0.4005, 0.0256, 0.0024, -0.0641),
    5: (36.93, 0.0214, -1.1795, -0.1076, -0.0244, -0.0142),
    6: (36.59, 0.7021, -1.4819, -0.1195, -0.0009, -0.0603),
    7: (11.02, 0.3008, -1.2591, -0.0811, -0.0043, -0.0959),
    8: (4.64, 0.3100, -0.6350, -0.0655, 0.0059, -0.0005),
    9: (15.81, 0.2119, -1.0292, -0.0868, -0.0177, -0.0723),
    10: (22.66, 0.3594, -1.3483, -0.1063, 0.0051, -0.0577),
    11: (25.57, 0.1496, -1.4643, -0.1409, -0.0079, -0.0258),
    12: (26.67, -0.1876, -1.4229, -0.1413, -0.0316, -0.0029),
}
#: Table 2 of Warren et al. (1999), snow water equivalent (cm of water): month -> (H0, A, B, C, D, E)
SWE = {
    1: (8.37, -0.0270, -0.3400, -0.0319, -0.0056, -0.0005),
    2: (9.43, 0.0058, -0.1309, 0.0017, -0.0021, -0.0072),
    3: (10.74, 0.1618, 0.0276, 0.0213, 0.0076, -0.0125),
    4: (11.67, 0.0841, -0.1328, 0.0081, -0.0003, -0.0301),
    5: (11.80, -0.0043, -0.4284, -0.0380, -0.0071, -0.0063),
    6: (12.48, 0.2084, -0.5739, -0.0468, -0.0023, -0.0253),
    7: (4.01, 0.0970, -0.4930, -0.0333, -0.0026, -0.0343),
    8: (1.08, 0.0712, -0.1450, -0.0155, 0.0014, 0.0000),
    9: (3.84, 0.0393, -0.2107, -0.0182, -0.0053, -0.0190),
    10: (6.24, 0.1158, -0.2803, -0.0215, 0.0015, -0.0176),
    11: (7.54, 0.0567, -0.3201, -0.0284, -0.0032, -0.0129),
    12: (8.00, -0.0540, -0.3650, -0.0362, -0.0112, -0.0035),
}
#: south of this latitude the drifting stations never went: segments there are flagged (see thickness())
DOMAIN_MIN_LATITUDE = 70.0
WATER_DENSITY_SWE = 1000.0  # kg m-3: SWE is given as a depth of liquid water


def polar_xy(lat, lon) -> tuple[np.ndarray, np.ndarray]:
    """Warren's coordinates: degrees of latitude from the pole, x along 0 deg E, y along 90 deg E.

    Examples
    --------
    >>> [float(round(v, 9)) for v in polar_xy(80.0, 90.0)]
    [0.0, 10.0]
    """
    colat = 90.0 - np.asarray(lat, dtype=np.float64)
    lon_rad = np.deg2rad(np.asarray(lon, dtype=np.float64))
    return colat * np.cos(lon_rad), colat * np.sin(lon_rad)


def _quadratic(table, month, x, y):
    h0, a, b, c, d, e = (np.asarray([table[int(m)][k] for m in month.ravel()]).reshape(month.shape) for k in range(6))
    return h0 + a * x + b * y + c * x * y + d * x**2 + e * y**2


def depth_and_density(lat, lon, month) -> tuple[np.ndarray, np.ndarray]:
    """W99 snow depth (m) and density (kg m-3, SWE / depth) at each point in its month (1-12).

    Where the fit's depth or SWE is not positive (extrapolation far outside its domain) both are NaN.

    Examples
    --------
    >>> depth, density = depth_and_density(90.0, 0.0, 3)  # the pole in March: H0 of both tables
    >>> float(depth), round(float(density), 3)
    (0.3389, 316.908)
    """
    lat, lon = np.broadcast_arrays(np.asarray(lat, dtype=np.float64), np.asarray(lon, dtype=np.float64))
    month = np.broadcast_to(np.asarray(month, dtype=np.int64), lat.shape)
    if month.size and (month.min() < 1 or month.max() > 12):
        raise ValueError("month must be 1-12")
    x, y = polar_xy(lat, lon)
    depth_cm = _quadratic(DEPTH, month, x, y)
    swe_cm = _quadratic(SWE, month, x, y)
    valid = (depth_cm > 0) & (swe_cm > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        depth = np.where(valid, depth_cm / 100.0, np.nan)
        density = np.where(valid, WATER_DENSITY_SWE * swe_cm / depth_cm, np.nan)
    return depth, density
