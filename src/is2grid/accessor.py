"""The ``.is2grid`` Dataset accessor: one-line wrappers over :mod:`is2grid.grid.gridding` and friends."""

from __future__ import annotations

from typing import Any

import xarray as xr

from is2grid.grid import gridding
from is2grid.grid.grids import Grid
from is2grid.products import icesat2


@xr.register_dataset_accessor("is2grid")
class Is2gridAccessor:
    """Gridding for Datasets opened with ``engine="atl10"`` (or anything with the same variables).

    Examples
    --------
    >>> import tempfile, xarray as xr
    >>> from is2grid import tutorial
    >>> ds = xr.open_dataset(tutorial.write_granule(tempfile.mkdtemp(), n_segments=2000), engine="atl10")
    >>> gridded = ds.is2grid.to_ease2(res=25000, freq="1D")
    >>> gridded.mean_fb.dims, gridded.crs.attrs["grid_mapping_name"]
    (('time', 'y', 'x'), 'lambert_azimuthal_equal_area')
    """

    def __init__(self, ds: xr.Dataset):
        self._ds = ds

    def hemisphere(self) -> str:
        """'north' or 'south', from the granule attributes or else from the latitudes.

        See :func:`is2grid.products.icesat2.hemisphere_of_dataset`.
        """
        return icesat2.hemisphere_of_dataset(self._ds)

    def to_ease2(self, res: float = 6250, **options: Any) -> xr.Dataset:
        """Bin segments onto EASE-Grid 2.0 (EPSG:6931 north / 6932 south) as ATL20 statistics.

        Parameters
        ----------
        res : float
            Cell size in metres, one of the standard EASE-Grid 2.0 sizes: 100000, 36000, 25000, 24000,
            12500, 10000, 9000, 6250, 5000, 3125, 3000, 1562.5 or 1000.
        **options
            ``variable`` (the segment variable to grid, default the product's), ``hemisphere``, ``freq``,
            ``bbox``, ``bbox_xy``, ``full_grid``, ``time_range``, ``segment_types``, ``max_quality``,
            ``value_range``, ``min_segments``: see :meth:`is2grid.grid.request.GridRequest.create`.

        Returns
        -------
        xarray.Dataset
            ``n_segments``, ``mean_seg_length``, ``mean_fb``, ``std_fb`` on (time, y, x) (another
            ``variable``: ``mean_<stem>``, ``std_<stem>``): see :func:`is2grid.grid.gridding.grid_segments`.
        """
        return gridding.grid_segments(self._ds, grid="ease2", res=res, **options)

    def to_grid(self, grid: Grid | str = "nsidc_ps25", **options: Any) -> xr.Dataset:
        """Bin segments onto any polar grid as the ATL20 statistics (drop in the bucket).

        Parameters
        ----------
        grid : Grid or str
            A :class:`is2grid.grid.grids.Grid`, ``"nsidc_ps25"`` (ATL20's polar stereographic 25 km grid,
            EPSG:3411/3412), ``"ease2"`` (with ``res=``) or ``"ease2_<metres>"``.
        **options
            See :meth:`is2grid.grid.request.GridRequest.create`.

        Returns
        -------
        xarray.Dataset
            See :func:`is2grid.grid.gridding.grid_segments`.
        """
        return gridding.grid_segments(self._ds, grid=grid, **options)

    def thickness(self, snow: Any = "w99", **options: Any) -> xr.Dataset:
        """Snow, sea ice thickness and uncertainties of ATL10 segments: see :func:`is2grid.thickness.thickness`."""
        from is2grid.thickness import thickness

        return thickness(self._ds, snow, **options)

    def latlon(self) -> xr.Dataset:
        """Add 2-D ``lat``/``lon`` of the cell centres: see :func:`is2grid.grid.gridding.with_latlon`."""
        return gridding.with_latlon(self._ds)

    def collapse_time(self) -> xr.Dataset:
        """All time bins of a gridded Dataset as one grid, exactly: see :func:`is2grid.grid.gridding.collapse_time`."""
        return gridding.collapse_time(self._ds)

    def sel_lonlat(self, lon: Any, lat: Any) -> xr.Dataset:
        """The cells holding points given in longitude/latitude: see :func:`is2grid.grid.gridding.sel_lonlat`."""
        return gridding.sel_lonlat(self._ds, lon, lat)

    def region_timeseries(self, region: Any) -> xr.Dataset:
        """A region's time series from a gridded Dataset: see :func:`is2grid.grid.timeseries.region_timeseries`."""
        from is2grid.grid import timeseries

        return timeseries.region_timeseries(self._ds, region)

    def segments_timeseries(
        self, region: Any, freq: str | None = "1D", res: float = 6250, **options: Any
    ) -> xr.Dataset:
        """A region's time series straight from segments: see :func:`is2grid.grid.timeseries.segments_timeseries`."""
        from is2grid.grid import timeseries

        return timeseries.segments_timeseries(self._ds, region, freq=freq, res=res, **options)

    def timeseries(self, region: Any, freq: str | None = "1D", res: float = 6250, **options: Any) -> xr.Dataset:
        """A region's time series, exact from the cell sums, of a gridded result or of segments.

        The Dataset's own declaration decides (:func:`kind_of`): a gridded result goes to
        :meth:`region_timeseries` (``freq`` and ``res`` are then the grid's own), segments to
        :meth:`segments_timeseries`.
        """
        if kind_of(self._ds) == "gridded":
            return self.region_timeseries(region)
        return self.segments_timeseries(region, freq=freq, res=res, **options)

    def explore(self, var: str | None = None, **options: Any):
        """An interactive map (or chart), a HoloViews object: see :mod:`is2grid.viz.explore`.

        Display it in a notebook, overlay (``*``) or lay it out (``+``), serve it
        (:func:`~is2grid.viz.explore.serve`) or save it as one offline page (:func:`~is2grid.viz.explore.save`).
        A gridded Dataset gets :func:`~is2grid.viz.explore.grid_explorer` (time slider, statistic selector),
        segments get :func:`~is2grid.viz.explore.segments_explorer` (rasterized; ``color="beam"`` too), a
        region time series gets :func:`~is2grid.viz.explore.timeseries_plot`; which one the Dataset is, its
        attributes say (:func:`kind_of`).
        """
        from is2grid.viz import explore

        kind = kind_of(self._ds)
        if kind == "gridded":
            return explore.grid_explorer(self._ds, var, **options)
        if kind == "series":
            return explore.timeseries_plot(self._ds, **options)
        return explore.segments_explorer(self._ds, **options)


def kind_of(ds: xr.Dataset) -> str:
    """What an is2grid Dataset is, as its attributes declare: ``"gridded"``, ``"series"`` or ``"segments"``.

    The gridder writes ``gridded_variable``, a region time series ``kind="region time series"``; anything
    else is taken for segments (as the engines give them, or built by hand with their variables).
    """
    if ds.attrs.get("kind") == "region time series":
        return "series"
    if "gridded_variable" in ds.attrs:
        return "gridded"
    return "segments"
