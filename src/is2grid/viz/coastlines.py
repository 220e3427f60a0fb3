"""Natural Earth 1:110m land outlines, shipped with the package so maps never download anything."""

from __future__ import annotations

import functools
from importlib import resources

import numpy as np

__all__ = ["coastlines", "land_rings"]


@functools.cache
def land_rings() -> list[np.ndarray]:
    """Land outlines as closed ``(n, 2)`` arrays of (longitude, latitude).

    Examples
    --------
    >>> rings = land_rings()
    >>> len(rings) > 100, rings[0].shape[1]
    (True, 2)
    """
    with resources.files("is2grid.viz").joinpath("data/coastlines_110m.npz").open("rb") as f:
        data = np.load(f)
        lonlat, lengths = data["lonlat"].astype(np.float64), data["lengths"]
    return np.split(lonlat, np.cumsum(lengths)[:-1])


@functools.cache
def coastlines() -> list[np.ndarray]:
    """The coast only: land outlines without the edges Natural Earth adds along 180° and the South Pole."""
    lines = []
    for ring in land_rings():
        keep = (ring[:, 1] > -85.5) & (np.abs(ring[:, 0]) < 179.999)
        breaks = np.flatnonzero(np.diff(keep.astype(int)) != 0) + 1
        for piece, ok in zip(np.split(ring, breaks), np.split(keep, breaks), strict=True):
            if ok[0] and len(piece) > 1:
                lines.append(piece)
    return lines
