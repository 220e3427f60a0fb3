"""The products is2grid reads and grids, one module each; everything else asks them.

Examples
--------
>>> product("atl07").name
'ATL07'
>>> of_name("processed_ATL10-01_20220106202428_02381401_006_01.h5").name
'ATL10'
"""

from __future__ import annotations

from typing import Any

from is2grid.products import icesat2
from is2grid.products.atl07 import ATL07
from is2grid.products.atl10 import ATL10
from is2grid.products.base import Product

__all__ = ["ATL07", "ATL10", "PRODUCTS", "Product", "granule_identity", "of_dataset", "of_name", "product"]

PRODUCTS: dict[str, Product] = {"ATL10": ATL10, "ATL07": ATL07}


def product(name: str | Product) -> Product:
    """The product of a name (``"ATL10"``, ``"atl07"``), or the Product given."""
    if isinstance(name, Product):
        return name
    found = PRODUCTS.get(str(name).upper())
    if found is None:
        raise ValueError(f"product={name!r}: is2grid reads {', '.join(PRODUCTS)}. Give one of these names.")
    return found


def of_name(name: str) -> Product | None:
    """The product whose granule-name pattern a path or URL matches, None for other names."""
    return next((p for p in PRODUCTS.values() if p.matches(name)), None)


def of_dataset(ds: Any) -> Product:
    """The product of opened segments or a gridded result: its ``product`` attribute, ATL10 if it has none.

    The engines set ``product``; a Dataset built by hand (from another reader) is taken as ATL10, whose
    variable names it then needs.
    """
    return product(ds.attrs.get("product", "ATL10"))


def granule_identity(name: str) -> str:
    """What makes two files the same granule, for a name of any product (the file name for other names).

    Examples
    --------
    >>> granule_identity("s3://b/ATLAS/processed_ATL07-01_20190226002919_09100201_003_02.h5")
    'ATL07-01_20190226002919_09100201'
    """
    found = of_name(name)
    return found.granule_identity(name) if found is not None else icesat2.file_name(name)
