"""What a user can hand the engine or ``grid_granules``, turned into something readable.

A path or URL, an ``earthaccess`` search result (``DataGranule``), an ``earthaccess.open`` /
fsspec file object, or any object with ``read`` and ``seek``.
"""

from __future__ import annotations

import os
from typing import Any, Literal

from is2grid.errors import GranuleError

__all__ = ["in_us_west_2", "is_granule_record", "pick_link", "record_name"]

Access = Literal["auto", "direct", "external"]


def in_us_west_2() -> bool:
    """Whether this process runs inside AWS us-west-2 (where NSIDC's S3 links work), by environment.

    Examples
    --------
    >>> isinstance(in_us_west_2(), bool)
    True
    """
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or ""
    return region == "us-west-2" and bool(
        os.environ.get("AWS_EXECUTION_ENV")
        or os.environ.get("JUPYTERHUB_API_URL")
        or os.environ.get("IS2GRID_IN_REGION")
    )


def is_granule_record(obj: Any) -> bool:
    """True for an earthaccess ``DataGranule`` (anything with ``data_links``)."""
    return callable(getattr(obj, "data_links", None))


def record_name(granule: Any) -> str:
    """The granule file name of an earthaccess search result (CMR's native id, else its GranuleUR)."""
    return str(granule["meta"].get("native-id") or granule["umm"].get("GranuleUR") or "")


def pick_link(granule: Any, access: Access = "auto") -> str:
    """The ``.h5`` link of an earthaccess granule: S3 inside us-west-2, HTTPS elsewhere.

    Parameters
    ----------
    granule : earthaccess.DataGranule
    access : {"auto", "direct", "external"}
        "direct" for the ``s3://`` link, "external" for the ``https://`` one, "auto" by region.
    """
    if access not in ("auto", "direct", "external"):
        raise ValueError(f"access={access!r}: use 'auto', 'direct' (s3://) or 'external' (https://).")
    chosen = ("direct" if in_us_west_2() else "external") if access == "auto" else access
    links = [link for link in granule.data_links(access=chosen) if link.split("?", 1)[0].endswith(".h5")]
    if not links:
        title = getattr(granule, "get", lambda *a: None)("meta", {}) or {}
        raise GranuleError(
            f"earthaccess granule {title.get('native-id', '?')!r}: no {chosen} .h5 link. Try access='external' "
            "(https://) or check that it is an ATL10 granule."
        )
    return links[0]
