"""Hypothesis strategies: random but valid (and deliberately partly invalid) segment sets."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from .helpers import segments

FINITE = {"allow_nan": False, "allow_infinity": False}


@st.composite
def segment_sets(draw, max_size=60):
    n = draw(st.integers(0, max_size))
    lat = draw(arrays(np.float64, n, elements=st.floats(-89.9, -50.0, **FINITE)))
    lon = draw(arrays(np.float64, n, elements=st.floats(-180.0, 180.0, **FINITE)))
    length = draw(arrays(np.float32, n, elements=st.floats(5.0, 560.0, width=32)))
    fb = draw(arrays(np.float32, n, elements=st.floats(0.0, 3.0, width=32)))
    hours = draw(arrays(np.int64, n, elements=st.integers(0, 24 * 5 - 1)))
    times = np.datetime64("2019-09-10", "ns") + hours.astype("timedelta64[h]")
    bad = draw(arrays(np.bool_, n))
    fb = np.where(bad & (np.arange(n) % 2 == 0), np.float32(np.nan), fb)
    lat = np.where(bad & (np.arange(n) % 2 == 1), np.nan, lat)
    return segments(lat, lon, times, length, fb)
