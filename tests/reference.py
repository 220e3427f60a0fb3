"""An independent brute-force gridder: plain Python loops over points, written apart from is2grid."""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
from pyproj import Transformer


def brute_force(lat, lon, times, length, fb, *, epsg, res, extent=9_000_000.0, n=None, day=True):
    """{(day, row, col): (count, mean_len, mean_fb, std_fb, min_fb, max_fb)} for valid in-grid points."""
    n = n if n is not None else round(2 * extent / res)
    to_xy = Transformer.from_crs(4326, epsg, always_xy=True)
    cells = defaultdict(list)
    for la, lo, t, L, h in zip(lat, lon, times, length, fb, strict=True):
        if not (math.isfinite(la) and math.isfinite(lo) and math.isfinite(L) and math.isfinite(h)):
            continue
        if L <= 0 or h > 1e38:
            continue
        x, y = to_xy.transform(lo, la)
        col = math.floor((x + extent) / res)
        row = math.floor((extent - y) / res)
        if not (0 <= col < n) or not (0 <= row < n):
            continue
        key = (np.datetime64(t, "D") if day else None, row, col)
        cells[key].append((float(L), float(h)))
    out = {}
    for key, items in cells.items():
        total_l = sum(L for L, _ in items)
        mean = sum(L * h for L, h in items) / total_l
        # two-pass weighted variance, unlike the one-pass sums under test
        var = sum(L * (h - mean) ** 2 for L, h in items) / total_l
        hs = [h for _, h in items]
        out[key] = (len(items), total_l / len(items), mean, math.sqrt(var), min(hs), max(hs))
    return out


def gridded_cells(grid_ds, mean="mean_fb", std="std_fb"):
    """The same mapping read back from an is2grid result (global row/col from the coordinates)."""
    res = float(grid_ds.attrs["grid_resolution_m"])
    out = {}
    counts = grid_ds.n_segments.values
    has_time = "time" in grid_ds.n_segments.dims
    if not has_time:
        counts = counts[None]
    idx = np.argwhere(counts > 0)
    for t, r, c in idx:
        row = round((9_000_000.0 - float(grid_ds.y[r])) / res - 0.5)
        col = round((float(grid_ds.x[c]) + 9_000_000.0) / res - 0.5)
        day = np.datetime64(grid_ds.time.values[t], "D") if has_time else None
        sel = (t, r, c) if has_time else (r, c)
        out[(day, row, col)] = (
            int(counts[t, r, c]),
            float(grid_ds.mean_seg_length.values[sel]),
            float(grid_ds[mean].values[sel]),
            float(grid_ds[std].values[sel]),
        )
    return out
