"""ATLAS time: ``delta_time`` (GPS seconds since 2018-01-01 UTC) to UTC.

ATL10 counts ``delta_time`` in GPS seconds since the ATLAS SDP epoch, 2018-01-01T00:00:00 UTC.
GPS time has no leap seconds, so UTC = epoch + delta_time - (leap seconds inserted after the
epoch). None has been inserted since 2017-01-01; when the IERS announces one, add a line to
:data:`LEAP_SECONDS` and nothing else changes.

The NSIDC tutorial added ``atlas_sdp_gps_epoch`` to the GPS epoch 1980-01-06 instead: that is
GPS time, 18 s ahead of UTC.
"""

from __future__ import annotations

import numpy as np

__all__ = ["ATLAS_EPOCH", "LEAP_SECONDS", "delta_time_to_utc", "utc_to_delta_time"]

ATLAS_EPOCH = np.datetime64("2018-01-01T00:00:00", "ns")

#: (UTC instant the new offset starts, GPS - UTC in seconds from then on)
LEAP_SECONDS: list[tuple[str, int]] = [
    ("2017-01-01T00:00:00", 18),
]

_OFFSET_AT_EPOCH = 18


def _steps(leap_seconds: list[tuple[str, int]]) -> list[tuple[float, int]]:
    """(GPS delta_time at which an extra leap second applies, seconds to subtract)."""
    steps = []
    for instant, total in leap_seconds:
        extra = total - _OFFSET_AT_EPOCH
        if extra <= 0:
            continue
        utc_elapsed = (np.datetime64(instant, "ns") - ATLAS_EPOCH) / np.timedelta64(1, "s")
        steps.append((float(utc_elapsed) + extra, extra))
    return steps


def delta_time_to_utc(delta_time, leap_seconds: list[tuple[str, int]] | None = None) -> np.ndarray:
    """Convert ATLAS ``delta_time`` (GPS seconds since 2018-01-01) to UTC ``datetime64[ns]``.

    Parameters
    ----------
    delta_time : array_like of float
        Seconds as stored in the granule. NaN gives NaT.
    leap_seconds : list of (str, int), optional
        Leap-second table; defaults to :data:`LEAP_SECONDS`.

    Returns
    -------
    numpy.ndarray of datetime64[ns]

    Examples
    --------
    >>> delta_time_to_utc([0.0, 86400.5])
    array(['2018-01-01T00:00:00.000000000', '2018-01-02T00:00:00.500000000'],
          dtype='datetime64[ns]')
    """
    seconds = np.asarray(delta_time, dtype=np.float64)
    for threshold, extra in _steps(LEAP_SECONDS if leap_seconds is None else leap_seconds):
        seconds = np.where(seconds >= threshold, seconds - extra, seconds)
    whole = np.floor(seconds)
    nanos = np.round((seconds - whole) * 1e9)
    finite = np.isfinite(seconds)
    ns = np.where(finite, whole, 0).astype(np.int64) * 1_000_000_000 + np.where(finite, nanos, 0).astype(np.int64)
    out = ATLAS_EPOCH + ns.astype("timedelta64[ns]")
    return np.where(finite, out, np.datetime64("NaT", "ns"))


def utc_to_delta_time(utc, leap_seconds: list[tuple[str, int]] | None = None) -> np.ndarray:
    """Inverse of :func:`delta_time_to_utc`: UTC datetimes to ATLAS GPS seconds.

    Examples
    --------
    >>> utc_to_delta_time(np.datetime64("2018-01-02T00:00:00"))
    array(86400.)
    """
    utc = np.asarray(utc, dtype="datetime64[ns]")
    seconds = (utc - ATLAS_EPOCH) / np.timedelta64(1, "s")
    for threshold, extra in _steps(LEAP_SECONDS if leap_seconds is None else leap_seconds):
        seconds = np.where(seconds + extra >= threshold, seconds + extra, seconds)
    return np.asarray(seconds, dtype=np.float64)
