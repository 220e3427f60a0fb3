"""The ``.is2grid`` Dataset accessor: thin wrappers over :mod:`is2grid.gridding` and :mod:`is2grid.grids`."""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from is2grid import gridding, grids
from is2grid.errors import GridError


@xr.register_dataset_accessor("is2grid")
class Is2gridAccessor:
    """Gridding for Datasets opened with ``engine="atl10"`` (or anything with the same variables).

    Examples
    --------
    >>> import tempfile, xarray as xr
    >>> from is2grid import tutorial
    >>> ds = xr.open_dataset(tutorial.write_granule(tempfile.mkdtemp(), n_segments=2000), engine="atl10")
    >>> grid = ds.is2grid.to_ease2(res=25000, freq="1D")
    >>> grid.mean_fb.dims, grid.crs.attrs["grid_mapping_name"]
    (('time', 'y', 'x'), 'lambert_azimuthal_equal_area')
    """

    def __init__(self, ds: xr.Dataset):
        self._ds = ds

    def hemisphere(self) -> str:
        """'north' or 'south', from the granule attributes or else from the latitudes."""
        return infer_hemisphere(self._ds)

    def to_ease2(self, res: float = 6250, *, hemisphere: str | None = None, **kwargs: Any) -> xr.Dataset:
        """Bin segments onto EASE-Grid 2.0 (EPSG:6931 north / 6932 south) as ATL20 statistics.

        Parameters
        ----------
        res : float
            Cell size in metres, one of the standard EASE-Grid 2.0 sizes: 100000, 36000, 25000, 24000,
            12500, 10000, 9000, 6250, 5000, 3125, 3000, 1562.5 or 1000.
        hemisphere : {"north", "south"}, optional
            Overrides the hemisphere found in the attributes or the latitudes.
        **kwargs
            ``freq``, ``bbox``, ``bbox_xy``, ``full_grid``, ``time_range``, ``segment_types``,
            ``max_quality``, ``fb_range``, ``min_segments``: see :meth:`to_grid`.

        Returns
        -------
        xarray.Dataset
            ``n_segments``, ``mean_seg_length``, ``mean_fb``, ``std_fb`` on (time, y, x).
        """
        hemi = hemisphere or self.hemisphere()
        return self.to_grid(grids.ease2_grid(hemi, res), hemisphere=hemi, **kwargs)

    def to_grid(
        self,
        grid: grids.Grid | str = "nsidc_ps25",
        *,
        hemisphere: str | None = None,
        freq: str | None = "1D",
        bbox: tuple[float, float, float, float] | None = None,
        bbox_xy: tuple[float, float, float, float] | None = None,
        full_grid: bool = False,
        time_range: tuple[Any, Any] | None = None,
        segment_types: tuple[int, ...] | list[int] | None = None,
        max_quality: int | None = None,
        fb_range: tuple[float, float] | None = None,
        min_segments: int = 1,
    ) -> xr.Dataset:
        """Bin segments onto any polar grid as the ATL20 statistics (drop in the bucket).

        Parameters
        ----------
        grid : Grid or str
            A :class:`is2grid.grids.Grid`, ``"nsidc_ps25"`` (ATL20's polar stereographic 25 km grid,
            EPSG:3411/3412) or ``"ease2_<metres>"``.
        hemisphere : {"north", "south"}, optional
            Needed only to resolve a grid name; default from the data.
        freq : str or None
            Time bins, any pandas offset alias: ``"1D"`` (ATL20-like daily), ``"7D"``, ``"MS"`` (monthly);
            ``None`` gives one 2-D grid over the whole input. ``time`` labels each bin's UTC start.
        bbox : (lon_min, lat_min, lon_max, lat_max), optional
            Keep segments in this lon/lat box and grid the smallest window of the global grid around it;
            ``lon_min > lon_max`` crosses the antimeridian.
        bbox_xy : (xmin, ymin, xmax, ymax), optional
            A projected box in metres instead.
        full_grid : bool
            The whole global grid. By default the smallest window holding the data, aligned to the
            global grid so every cell keeps its global coordinates.
        time_range : (start, end), optional
            Fixes the time axis. With dask input, giving it and one of ``bbox``/``bbox_xy``/``full_grid``
            keeps the result lazy; otherwise the sums are computed (chunk by chunk) to find the extent.
        segment_types : sequence of int, optional
            Keep these ``height_segment_type`` values only, e.g. ``(1,)`` for sea ice without leads.
        max_quality : int, optional
            Keep ``1 <= beam_fb_quality_flag <= max_quality``.
        fb_range : (lo, hi), optional
            Keep freeboards in this closed range (m).
        min_segments : int
            Statistics are NaN in cells with fewer segments (``n_segments`` still counts them).

        Returns
        -------
        xarray.Dataset
            CF-1.8: ``x``/``y`` cell centres (m, y descending), a ``crs`` grid-mapping variable with
            ``crs_wkt``, and the four statistics, each with ``grid_mapping``, units and ``cell_methods``.
            Empty cells have ``n_segments == 0`` and NaN statistics.
        """
        hemi = hemisphere or self.hemisphere()
        if isinstance(grid, str):
            grid = grids.grid_by_name(grid, hemi)
        if not isinstance(grid, grids.Grid):
            raise GridError(f"grid={grid!r}: pass an is2grid.grids.Grid or a grid name such as 'nsidc_ps25'.")
        return gridding.grid_segments(
            self._ds,
            grid,
            freq=freq,
            bbox=bbox,
            bbox_xy=bbox_xy,
            full_grid=full_grid,
            time_range=time_range,
            segment_types=segment_types,
            max_quality=max_quality,
            fb_range=fb_range,
            min_segments=min_segments,
            check_hemisphere=hemi,
        )

    def latlon(self) -> xr.Dataset:
        """Add 2-D ``lat``/``lon`` of the cell centres to a gridded Dataset (computed on demand)."""
        return add_latlon(self._ds)


def infer_hemisphere(ds: xr.Dataset) -> str:
    hemi = ds.attrs.get("hemisphere")
    if hemi in ("north", "south"):
        return hemi
    if hemi == "mixed":
        raise GridError(
            "the Dataset mixes granules of both hemispheres. Grid each separately: open the ATL10-01 (Arctic) "
            "and ATL10-02 (Antarctic) granules apart, or pass hemisphere= and filter by latitude."
        )
    if "latitude" not in ds.variables:
        raise GridError("cannot tell the hemisphere: no 'hemisphere' attribute and no latitude. Pass hemisphere=.")
    lat = ds["latitude"]
    north, south = bool((lat > 0).any()), bool((lat < 0).any())
    if north and south:
        raise GridError(
            "the Dataset holds segments of both hemispheres. Split it (e.g. ds.where(ds.latitude < 0, drop=True)) "
            "and grid each hemisphere separately."
        )
    if not (north or south):
        raise GridError("cannot tell the hemisphere of an empty Dataset. Pass hemisphere='north' or 'south'.")
    return "north" if north else "south"


def add_latlon(ds: xr.Dataset) -> xr.Dataset:
    from pyproj import CRS, Transformer

    if "crs" not in ds.variables or "x" not in ds.coords or "y" not in ds.coords:
        raise GridError("latlon() needs a gridded Dataset with x, y and a 'crs' grid-mapping variable (from to_ease2).")
    crs = CRS.from_cf(ds["crs"].attrs)
    xx, yy = np.meshgrid(ds.x.values, ds.y.values)
    lon, lat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform(xx, yy)
    return ds.assign_coords(
        lat=(
            ("y", "x"),
            lat,
            {"standard_name": "latitude", "units": "degrees_north", "long_name": "latitude of cell centre"},
        ),
        lon=(
            ("y", "x"),
            lon,
            {"standard_name": "longitude", "units": "degrees_east", "long_name": "longitude of cell centre"},
        ),
    )
