"""Sea ice thickness from total (snow) freeboard by hydrostatic balance, and its first-order uncertainty.

With total freeboard ``fb`` (ATL10's ``beam_fb_height``: snow surface above the local sea level), snow
depth ``hs`` and densities of sea water, ice and snow::

    h_i = rho_w / (rho_w - rho_i) * fb - (rho_w - rho_s) / (rho_w - rho_i) * hs,   hs <= fb

Snow deeper than the freeboard is capped at the freeboard (Petty et al. 2020): the ice surface cannot lie
below the waterline in this model. With ``hs = fb`` (zero ice freeboard, Kurtz and Markus 2012) the
thickness is ``rho_s fb / (rho_w - rho_i)``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["ice_thickness", "ice_thickness_uncertainty"]


def ice_thickness(fb, hs, rho_w, rho_i, rho_s) -> tuple[np.ndarray, np.ndarray]:
    """Ice thickness (m) and the snow depth used (capped at the freeboard), element by element.

    Examples
    --------
    >>> h, used = ice_thickness(0.3, 0.2, 1024.0, 916.7, 300.0)
    >>> round(float(h), 4), float(used)
    (1.5135, 0.2)
    >>> h, used = ice_thickness(0.3, 0.5, 1024.0, 916.7, 300.0)  # snow capped: zero ice freeboard
    >>> round(float(h), 4), float(used), round(300.0 * 0.3 / (1024.0 - 916.7), 4)
    (0.8388, 0.3, 0.8388)
    """
    fb, hs, rho_w, rho_i, rho_s = (np.asarray(v, dtype=np.float64) for v in (fb, hs, rho_w, rho_i, rho_s))
    used = np.minimum(hs, fb)
    return (rho_w * fb - (rho_w - rho_s) * used) / (rho_w - rho_i), used


def ice_thickness_uncertainty(fb, hs, rho_w, rho_i, rho_s, sigma_fb, sigma_hs, sigma_rho_i, sigma_rho_s):
    """One-sigma uncertainty of :func:`ice_thickness`, first order, the error sources independent.

    Where the snow is capped at the freeboard the snow depth is the freeboard, so its error is the
    freeboard's (d h_i / d fb = rho_s / (rho_w - rho_i)) and the snow depth's own uncertainty drops out.
    The sea water density is taken as known (its spread, a few kg m-3, is small against the others').

    Examples
    --------
    >>> round(float(ice_thickness_uncertainty(0.3, 0.2, 1024.0, 916.7, 300.0, 0.02, 0.06, 35.7, 40.0)), 4)
    0.6778
    """
    fb, hs, rho_w, rho_i, rho_s = (np.asarray(v, dtype=np.float64) for v in (fb, hs, rho_w, rho_i, rho_s))
    h, used = ice_thickness(fb, hs, rho_w, rho_i, rho_s)
    capped = hs >= fb
    span = rho_w - rho_i
    d_fb = np.where(capped, rho_s / span, rho_w / span)
    d_hs = np.where(capped, 0.0, -(rho_w - rho_s) / span)
    d_rho_s = used / span
    d_rho_i = h / span
    terms = (d_fb * sigma_fb, d_hs * sigma_hs, d_rho_i * sigma_rho_i, d_rho_s * sigma_rho_s)
    return np.sqrt(sum(np.square(t) for t in terms))
