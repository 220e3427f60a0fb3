"""The ``atl10`` and ``atl07`` xarray backend entry points. They only forward: see :mod:`is2grid.backend.opening`."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from xarray.backends import BackendEntrypoint

DEFAULT_BEAMS = "strong"


class _SegmentsEntrypoint(BackendEntrypoint):
    """What the engines of every product share; a subclass names its product."""

    product_name = ""
    description = ""
    supports_groups = True
    url = "https://github.com/is2grid/is2grid"
    open_dataset_parameters = (
        "filename_or_obj",
        "mask_and_scale",
        "decode_times",
        "drop_variables",
        "group",
        "beams",
        "variables",
        "credentials",
        "storage_options",
    )

    def open_dataset(  # type: ignore[override]
        self,
        filename_or_obj: str | os.PathLike[Any] | Any,
        *,
        mask_and_scale: bool = True,
        decode_times: bool = True,
        drop_variables: str | Iterable[str] | None = None,
        group: str | None = None,
        beams: str | list[str] = DEFAULT_BEAMS,
        variables: str | list[str] | None = None,
        credentials: Any = None,
        storage_options: dict[str, Any] | None = None,
    ):
        """Open the segments of the chosen beams as one ragged Dataset.

        Parameters
        ----------
        filename_or_obj : str, os.PathLike, earthaccess DataGranule or file object
            A path, ``file://``, ``s3://`` or ``https://`` URL, a search result, or an open binary file.
        mask_and_scale : bool
            Replace fill values by NaN (default).
        decode_times : bool
            Decode ``delta_time`` (CF "seconds since 2018-01-01") to UTC datetimes (default).
        drop_variables : str or iterable of str, optional
            Variables not to open.
        group : str, optional
            One beam, e.g. ``"gt1l"`` (not with ``beams``).
        beams : {"strong", "weak", "all"} or list of str
            The beams, concatenated along ``segment`` (default the strong ones).
        variables : str or list of str, optional
            Segment variables to open besides the coordinates (default: the product's default set).
        credentials : optional
            A token, ``earthaccess.Auth``, S3 dict, provider or :class:`is2grid.Credentials`.
        storage_options : dict, optional
            Fetch options: ``timeout``, ``retries``, ``backoff``, ``coalesce``, ``endpoint_url``...

        Returns
        -------
        xarray.Dataset
        """
        from is2grid.backend.opening import open_segments
        from is2grid.products import product

        if _called_by_open_mfdataset():
            from is2grid.errors import UnsupportedInputError

            raise UnsupportedInputError(
                f"xr.open_mfdataset cannot join {self.product_name} granules: their segments are ragged (one "
                "'segment' dimension and a 'row_size' per beam), which xarray would align on 'trajectory' or "
                "broadcast. Use "
                "is2grid.open_granules(paths) for one ragged Dataset of all their segments, or "
                "is2grid.workflow.grid_granules(paths, ...) to grid them."
            )
        if group is not None and beams != DEFAULT_BEAMS:
            raise ValueError(
                f"group={group!r} and beams={beams!r}: give one of them. group= opens one beam; beams= opens "
                "'strong', 'weak', 'all' or a list of beams."
            )
        return open_segments(
            filename_or_obj,
            beams=[group] if group is not None else beams,
            group=group,
            variables=variables,
            drop_variables=drop_variables,
            mask_and_scale=mask_and_scale,
            decode_times=decode_times,
            credentials=credentials,
            storage_options=storage_options,
            product=product(self.product_name),
        )

    def open_groups_as_dict(  # type: ignore[override]
        self,
        filename_or_obj: str | os.PathLike[Any],
        *,
        mask_and_scale: bool = True,
        decode_times: bool = True,
        drop_variables: str | Iterable[str] | None = None,
        credentials: Any = None,
        storage_options: dict[str, Any] | None = None,
    ):
        """Every beam group of a granule at its own length: ``{"/": root, "/gt1l/leads": ..., ...}``."""
        from is2grid.backend.opening import open_groups
        from is2grid.products import product

        return open_groups(
            filename_or_obj,
            mask_and_scale=mask_and_scale,
            decode_times=decode_times,
            drop_variables=drop_variables,
            credentials=credentials,
            storage_options=storage_options,
            product=product(self.product_name),
        )

    def open_datatree(  # type: ignore[override]
        self,
        filename_or_obj: str | os.PathLike[Any],
        *,
        mask_and_scale: bool = True,
        decode_times: bool = True,
        drop_variables: str | Iterable[str] | None = None,
        credentials: Any = None,
        storage_options: dict[str, Any] | None = None,
    ):
        """The whole granule as a DataTree: the beams, then each beam's groups (ATL10: freeboard_segment, leads...)."""
        from xarray import DataTree

        groups = self.open_groups_as_dict(
            filename_or_obj,
            mask_and_scale=mask_and_scale,
            decode_times=decode_times,
            drop_variables=drop_variables,
            credentials=credentials,
            storage_options=storage_options,
        )
        return DataTree.from_dict(groups)

    def guess_can_open(self, filename_or_obj: Any) -> bool:
        """Whether the name is a granule name of this engine's product (``ATL10-0[12]_..._006_01.h5``)."""
        from is2grid.products import product

        try:
            name = os.fspath(filename_or_obj)
        except TypeError:
            return False
        if not isinstance(name, str):
            return False
        return product(self.product_name).matches(name)


class ATL10BackendEntrypoint(_SegmentsEntrypoint):
    """Open ICESat-2 ATL10 granules with ``xr.open_dataset(path, engine="atl10")``.

    The strong beams' ``freeboard_segment`` rows become one ragged ``segment`` dimension (a CF
    contiguous ragged array, featureType trajectory) read lazily through h5coro.
    """

    product_name = "ATL10"
    description = "ICESat-2 ATL10 sea ice freeboard granules (local, s3://, https://, earthaccess results)"


class ATL07BackendEntrypoint(_SegmentsEntrypoint):
    """Open ICESat-2 ATL07 granules with ``xr.open_dataset(path, engine="atl07")``.

    The strong beams' ``sea_ice_segments`` rows (heights, their length, type and quality) become one
    ragged ``segment`` dimension, exactly as the ``atl10`` engine gives ATL10's freeboard segments.
    """

    product_name = "ATL07"
    description = "ICESat-2 ATL07 sea ice height granules (local, s3://, https://, earthaccess results)"


def _called_by_open_mfdataset() -> bool:
    """Whether xarray's ``open_mfdataset`` is opening this granule (its result could only be wrong).

    xarray gives a backend no sign of it but the call stack; with ``parallel=True`` the granules are opened
    in dask tasks and the join fails on its own (the docs say which function to use instead).
    """
    import sys

    frame: Any = sys._getframe(2)
    while frame is not None:
        if frame.f_code.co_name == "open_mfdataset" and frame.f_globals.get("__name__", "").startswith("xarray."):
            return True
        frame = frame.f_back
    return False


def entrypoint(product_name: str) -> type[BackendEntrypoint]:
    """The backend class of a product, to pass as ``engine=`` without xarray's discovery of every backend.

    ``xr.open_dataset(path, engine="atl10")`` first lists every installed backend (seconds in a fresh
    process with many installed); the class is found at once.

    Examples
    --------
    >>> entrypoint("ATL07").__name__
    'ATL07BackendEntrypoint'
    """
    classes = {"ATL10": ATL10BackendEntrypoint, "ATL07": ATL07BackendEntrypoint}
    return classes[product_name.upper()]
