"""Find ATL10 or ATL07 granules with earthaccess (NASA's CMR): by region, time and hemisphere."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from is2grid._extras import need
from is2grid.errors import GridError
from is2grid.grid.regions import Region
from is2grid.grid.regions import region as as_region
from is2grid.io.inputs import record_name
from is2grid.products import product as as_product

__all__ = ["search", "time_span"]


def time_span(time: Any) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The (start, end) instants of a period: ``"2019-09"``, ``"2019"``, ``"2019-09-15"`` or a (start, end) pair.

    The end is the last instant of the period (a month runs to its last day's 23:59:59.999999999).

    Examples
    --------
    >>> time_span("2019-09")
    (Timestamp('2019-09-01 00:00:00'), Timestamp('2019-09-30 23:59:59.999999999'))
    >>> time_span(("2019-09-01", "2019-09-03"))
    (Timestamp('2019-09-01 00:00:00'), Timestamp('2019-09-03 00:00:00'))
    """
    try:
        if isinstance(time, tuple | list) and len(time) == 2:
            start, end = pd.Timestamp(time[0]), pd.Timestamp(time[1])
        else:
            text = str(time)
            freq = {4: "Y", 7: "M", 10: "D"}.get(len(text))
            if freq is None:
                raise ValueError(text)
            period = pd.Period(text, freq=freq)
            start, end = period.start_time, (period + 1).start_time - pd.Timedelta(1, "ns")
    except (ValueError, TypeError) as err:
        raise GridError(
            f"time={time!r}: give a year ('2019'), a month ('2019-09'), a day ('2019-09-15') or a (start, end) pair."
        ) from err
    if end < start:
        raise GridError(f"time={time!r}: end before start.")
    return start, end


def search(
    region: Any = None,
    time: Any = None,
    *,
    hemisphere: str | None = None,
    version: str = "006",
    count: int = -1,
    product: str = "ATL10",
    **kwargs: Any,
) -> list[Any]:
    """ATL10 (or ATL07) granules (earthaccess ``DataGranule`` results) over a region and a period.

    Needs no login (CMR search is public); opening the granules does. The results go straight into
    :func:`is2grid.workflow.grid_granules` and ``xr.open_dataset(..., engine="atl10")``.

    Parameters
    ----------
    region : str, tuple, shapely geometry or GeoJSON, optional
        A name of :data:`is2grid.grid.regions.REGIONS` (e.g. ``"ross"``), a box, or a polygon; see
        :func:`is2grid.grid.regions.region`. Its bounding box is sent to CMR.
    time : str or (start, end)
        The period: ``"2019-09"``, ``"2019"``, ``"2019-09-15"`` or a pair of dates.
    hemisphere : {"north", "south"}, optional
        Keep granules of this hemisphere only (ATL10-01 Arctic, ATL10-02 Antarctic); default the region's.
    version : str
        The product's release.
    count : int
        At most this many results (-1: all).
    product : {"ATL10", "ATL07"}
        The product searched for.
    **kwargs
        More ``earthaccess.search_data`` keywords.

    Returns
    -------
    list of earthaccess.DataGranule
        Sorted by start time.

    Raises
    ------
    is2grid.GridError
        For a bad region, period or hemisphere, or a region in the other hemisphere.
    """
    need("earthdata", "is2grid.search", ("earthaccess",))
    import earthaccess

    try:
        chosen = as_product(product)
    except ValueError as err:
        raise GridError(str(err)) from err
    if time is None:
        raise GridError("search(time=...) is needed: a year ('2019'), a month ('2019-09') or a (start, end) pair.")
    start, end = time_span(time)
    area: Region | None = None if region is None else as_region(region)
    if hemisphere is None and area is not None:
        hemisphere = area.hemisphere
    if hemisphere not in (None, "north", "south"):
        raise GridError(f"hemisphere={hemisphere!r}: use 'north' or 'south'.")
    if area is not None and area.hemisphere not in (None, hemisphere):
        raise GridError(f"region {area.name!r} lies in the {area.hemisphere}ern hemisphere, not the {hemisphere}ern.")
    query: dict[str, Any] = {
        "short_name": chosen.name,
        "version": version,
        "temporal": (start.isoformat(), end.isoformat()),
        "count": count,
        **kwargs,
    }
    if area is not None and area.bbox != (-180.0, -90.0, 180.0, 90.0):
        query["bounding_box"] = area.bbox
    results = _searched(earthaccess.search_data, query)
    kept = [
        g for g in results if hemisphere is None or chosen.hemisphere_from_name(record_name(g)) in (hemisphere, None)
    ]
    return sorted(kept, key=lambda g: chosen.start_time_from_name(record_name(g)) or np.datetime64(0, "s"))


def _searched(search_data, query: dict[str, Any]) -> list[Any]:
    """``search_data(**query)``; a failing network is a named :class:`~is2grid.RemoteReadError`."""
    import requests

    from is2grid.errors import RemoteReadError

    host = "cmr.earthdata.nasa.gov"
    try:
        return list(search_data(**query))
    except requests.exceptions.RequestException as err:
        response = getattr(err, "response", None)
        status = f" (HTTP {response.status_code})" if response is not None else ""
        raise RemoteReadError(
            f"searching NASA's CMR ({host}) for {query['short_name']} granules failed{status}: "
            f"{type(err).__name__}. Check the network (a proxy, a VPN, no internet on this node?) and try again; "
            "to grid files you have, pass their paths."
        ) from None
    except (OSError, TimeoutError) as err:
        raise RemoteReadError(
            f"searching NASA's CMR ({host}) for {query['short_name']} granules failed ({type(err).__name__}: "
            f"{err}). Check the network and try again; to grid files you have, pass their paths."
        ) from None
