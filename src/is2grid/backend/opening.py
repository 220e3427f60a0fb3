"""Opening granules: the engine's work, as plain functions (the entry point only forwards here)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import xarray as xr
from xarray.backends.store import StoreBackendEntrypoint

from is2grid.backend.store import BeamGroupStore, FetchWithOpen, Granule, SegmentStore
from is2grid.io.credentials import Credentials, as_credentials, split_url_secrets
from is2grid.io.inputs import is_granule_record, pick_link
from is2grid.io.options import FetchOptions
from is2grid.io.sources import resolve
from is2grid.products import ATL10, Product, icesat2


def open_granule(
    target: Any,
    credentials: Any,
    storage_options: Mapping[str, Any] | None,
    product: Product = ATL10,
    ahead: FetchWithOpen | None = None,
) -> Granule:
    """Structure and orbit_info of a granule given as a path, URL, earthaccess granule or file object."""
    options, from_options = FetchOptions.parse(storage_options)
    if is_granule_record(target):
        target = pick_link(target, options.access)  # type: ignore[arg-type]
    url = os.fspath(target) if isinstance(target, str | os.PathLike) else None
    made = as_credentials(credentials if credentials is not None else from_options, url)
    if url is not None:
        resolve(url)  # a malformed URL is named here, before anything parses it
        # a pre-signed query string or user:password in the URL is a secret: it travels as credentials
        target, query, userinfo = split_url_secrets(url)
        if query or userinfo:
            made = (made or Credentials()).with_url_secrets(query, userinfo)
    return Granule(target, made, options, product, ahead)


def _decode(store, mask_and_scale: bool, decode_times: bool, drop_variables=None) -> xr.Dataset:
    ds = StoreBackendEntrypoint().open_dataset(
        store,
        mask_and_scale=mask_and_scale,
        decode_times=decode_times,
        decode_timedelta=False,
        concat_characters=True,
        decode_coords=False,
        drop_variables=drop_variables,
    )
    coords = [c for c in (*icesat2.COORDINATES, "beam", "trajectory") if c in ds.variables]
    ds = ds.set_coords(coords)
    ds.set_close(store.close)  # set_coords returns a new Dataset, without the store's close
    # xarray would record the URL as given, pre-signed query string and all
    ds.encoding["source"] = store.granule.url
    return ds


def open_segments(
    filename_or_obj: str | os.PathLike,
    *,
    beams="strong",
    group: str | None = None,
    variables=None,
    drop_variables=None,
    mask_and_scale: bool = True,
    decode_times: bool = True,
    credentials: Any = None,
    storage_options: Mapping[str, Any] | None = None,
    product: Product = ATL10,
) -> xr.Dataset:
    """Open the segments of the chosen beams as one ragged Dataset (see the engine docs)."""
    engine = product.name.lower()
    if group is not None and group not in icesat2.BEAMS:
        raise ValueError(
            f"group={group!r}: the {engine} engine opens one beam with group=, one of {list(icesat2.BEAMS)}. "
            f"For the other groups of a beam use xr.open_datatree(path, engine={engine!r})."
        )
    ahead = FetchWithOpen(beams, variables, drop_variables)
    granule = open_granule(filename_or_obj, credentials, storage_options, product, ahead)
    try:
        store = SegmentStore(granule, beams, variables, drop_variables, mask_and_scale, decode_times)
        return _decode(store, mask_and_scale, decode_times)
    except BaseException:
        granule.reader.close()
        raise


def open_groups(
    filename_or_obj: str | os.PathLike,
    *,
    mask_and_scale: bool = True,
    decode_times: bool = True,
    drop_variables=None,
    credentials: Any = None,
    storage_options: Mapping[str, Any] | None = None,
    product: Product = ATL10,
) -> dict[str, xr.Dataset]:
    """Every beam group of a granule at its own length: ``{"/": root, "/gt1l/leads": ..., ...}``."""
    granule = open_granule(filename_or_obj, credentials, storage_options, product)
    try:
        groups: dict[str, xr.Dataset] = {"/": xr.Dataset(attrs=granule.attrs)}
        for beam in granule.beams:
            groups[f"/{beam}"] = xr.Dataset(attrs={"beam": beam, **product.beam_attrs(beam, granule.sc_orient)})
            for group in product.beam_groups:
                if group not in granule.links(beam) or not granule.listing(f"{beam}/{group}")[0]:
                    continue
                store = BeamGroupStore(granule, beam, group, drop_variables, mask_and_scale, decode_times)
                groups[f"/{beam}/{group}"] = _decode(store, mask_and_scale, decode_times)
    except BaseException:
        granule.reader.close()
        raise
    groups["/"].set_close(granule.reader.close)
    return groups
