"""Polar grids as values: CRS + origin + cell size + shape, point -> cell indexing, cell keys.

EASE-Grid 2.0 North/South (EPSG:6931/6932) at every standard cell size, and the NSIDC sea ice
polar stereographic 25 km grids (EPSG:3411/3412) that NASA's ATL20 uses. Cell (row, col) has its
centre at ``x = x0 + (col + 0.5) * res`` and ``y = y0 - (row + 0.5) * res``; a point belongs to the
grid only if its row and its column are each inside (checked separately, so a point past the right
edge can never alias into the next row).

A (time bin, cell) pair is one int64 *key*, ``(ordinal * rows + row) * cols + col`` over the
parent grid, so sums of different windows and batches combine by key alone.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from is2grid import _threads
from is2grid.errors import GridError
from is2grid.grid import laea

__all__ = ["EASE2_CELLS", "Grid", "ease2_grid", "grid_by_name", "nsidc_polar_stereo_grid", "to_lonlat", "to_xy"]

EASE2_EXTENT = 9_000_000.0
#: standard EASE-Grid 2.0 polar cell sizes (m) -> cells per side
EASE2_CELLS = {
    100000.0: 180, 36000.0: 500, 25000.0: 720, 24000.0: 750, 12500.0: 1440, 10000.0: 1800, 9000.0: 2000,
    6250.0: 2880, 5000.0: 3600, 3125.0: 5760, 3000.0: 6000, 1562.5: 11520, 1000.0: 18000,
}  # fmt: skip
HEMISPHERES = ("north", "south")


@dataclass(frozen=True)
class Grid:
    """A regular projected grid, or a window of one (``row0``/``col0`` offsets into the parent).

    Examples
    --------
    >>> g = ease2_grid("south", 25000)
    >>> g.shape, g.crs
    ((720, 720), 'EPSG:6932')
    >>> g.x[:2]
    array([-8987500., -8962500.])
    """

    name: str
    crs: str
    res: float
    x0: float  # left edge of the parent grid's column 0
    y0: float  # top edge of the parent grid's row 0
    nrows: int
    ncols: int
    row0: int = 0
    col0: int = 0
    parent_shape: tuple[int, int] | None = None

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, columns) of this grid or window."""
        return (self.nrows, self.ncols)

    @property
    def full_shape(self) -> tuple[int, int]:
        """(rows, columns) of the parent grid."""
        return self.parent_shape or self.shape

    @property
    def hemisphere(self) -> str:
        """'north' or 'south', from the latitude of the projection origin."""
        from pyproj import CRS

        origin = CRS.from_user_input(self.crs).to_cf()
        lat = origin.get("latitude_of_projection_origin", origin.get("standard_parallel", 0.0))
        return "north" if float(lat) > 0 else "south"

    @property
    def x(self) -> np.ndarray:
        """Cell-centre x (m), increasing."""
        return self.x0 + (np.arange(self.col0, self.col0 + self.ncols) + 0.5) * self.res

    @property
    def y(self) -> np.ndarray:
        """Cell-centre y (m), decreasing (row 0 at the top)."""
        return self.y0 - (np.arange(self.row0, self.row0 + self.nrows) + 0.5) * self.res

    def cell_index(self, x, y) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Global (row, col) of each point and whether it lies in this grid (window).

        Examples
        --------
        >>> g = ease2_grid("south", 100000)
        >>> g.cell_index(np.array([-9e6, 8999999.9, 9e6]), np.array([9e6, -8999999.9, 0.0]))
        (array([  0, 179,  -1]), array([  0, 179,  -1]), array([ True,  True, False]))
        """
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        with np.errstate(invalid="ignore"):
            colf = np.floor((x - self.x0) / self.res)
            rowf = np.floor((self.y0 - y) / self.res)
            inside = (
                (colf >= self.col0)
                & (colf < self.col0 + self.ncols)
                & (rowf >= self.row0)
                & (rowf < self.row0 + self.nrows)
            )
        col = np.where(inside, colf, -1).astype(np.int64)
        row = np.where(inside, rowf, -1).astype(np.int64)
        return row, col, inside

    def keys(self, ordinal, row, col) -> np.ndarray:
        """One int64 key per (time-bin ordinal, global row, global column).

        Examples
        --------
        >>> g = ease2_grid("south", 100000)
        >>> keys = g.keys(np.array([2]), np.array([3]), np.array([4]))
        >>> keys, g.split_keys(keys)
        (array([65344]), (array([2]), array([3]), array([4])))
        """
        rows, cols = self.full_shape
        return (np.asarray(ordinal, dtype=np.int64) * rows + row) * cols + col

    def split_keys(self, keys) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(ordinal, global row, global column) of each key: the inverse of :meth:`keys`."""
        rows, cols = self.full_shape
        ordinal, cell = np.divmod(np.asarray(keys, dtype=np.int64), rows * cols)
        row, col = np.divmod(cell, cols)
        return ordinal, row, col

    def window(self, row_min: int, row_max: int, col_min: int, col_max: int) -> Grid:
        """The sub-grid of global rows/cols ``[row_min, row_max] x [col_min, col_max]`` (inclusive), clipped."""
        full_rows, full_cols = self.full_shape
        r0, r1 = max(0, int(row_min)), min(full_rows - 1, int(row_max))
        c0, c1 = max(0, int(col_min)), min(full_cols - 1, int(col_max))
        if r1 < r0 or c1 < c0:
            r0 = r1 = c0 = c1 = 0
            return dataclasses.replace(self, row0=0, col0=0, nrows=0, ncols=0, parent_shape=self.full_shape)
        return dataclasses.replace(
            self, row0=r0, col0=c0, nrows=r1 - r0 + 1, ncols=c1 - c0 + 1, parent_shape=self.full_shape
        )

    def full(self) -> Grid:
        """The parent grid of a window (or the grid itself)."""
        rows, cols = self.full_shape
        return dataclasses.replace(self, row0=0, col0=0, nrows=rows, ncols=cols, parent_shape=(rows, cols))

    def window_for_xy(self, xmin: float, ymin: float, xmax: float, ymax: float) -> Grid:
        """The smallest window of the full grid covering a projected box."""
        full = self.full()
        col_min = np.floor((xmin - self.x0) / self.res)
        col_max = np.floor((xmax - self.x0) / self.res)
        row_min = np.floor((self.y0 - ymax) / self.res)
        row_max = np.floor((self.y0 - ymin) / self.res)
        return full.window(row_min, row_max, col_min, col_max)

    def window_for_lonlat(self, lon_min: float, lat_min: float, lon_max: float, lat_max: float) -> Grid:
        """The smallest window of the full grid covering a lon/lat box (``lon_min > lon_max`` crosses 180°).

        Examples
        --------
        >>> ease2_grid("south", 25000).window_for_lonlat(-180, -90, 180, -89).shape
        (10, 10)
        """
        from pyproj import Transformer

        to_grid = Transformer.from_crs("EPSG:4326", self.crs, always_xy=True)
        # the box's edges, densified, hold the extremes: a projection has no interior extremum
        xmin, ymin, xmax, ymax = to_grid.transform_bounds(lon_min, lat_min, lon_max, lat_max, densify_pts=720)
        return self.window_for_xy(xmin, ymin, xmax, ymax)

    def lonlat(self) -> tuple[np.ndarray, np.ndarray]:
        """2-D longitude and latitude (degrees) of the cell centres, shape ``(rows, cols)``."""
        xx, yy = np.meshgrid(self.x, self.y)
        return to_lonlat(xx, yy, self.crs)

    def cf_grid_mapping(self) -> dict[str, Any]:
        """CF grid-mapping attributes, with ``crs_wkt``, for the grid's CRS."""
        from pyproj import CRS

        attrs = CRS.from_user_input(self.crs).to_cf()
        attrs["long_name"] = self.name
        attrs["GeoTransform"] = " ".join(
            str(v)
            for v in (self.x0 + self.col0 * self.res, self.res, 0.0, self.y0 - self.row0 * self.res, 0.0, -self.res)
        )
        return attrs


def to_xy(lon, lat, crs: str, threads: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Longitude/latitude (WGS84 degrees) to ``crs`` metres; large inputs split over threads.

    EASE-Grid 2.0 (EPSG:6931/6932) is computed in closed form (:mod:`is2grid.grid.laea`, in 0.6 of PROJ's
    time and equal to it within a micrometre), other CRSs by PROJ. Both release the GIL, so two
    threads nearly halve the time of a granule's million points. ``threads`` defaults to the process's
    share of the cores (see ``IS2GRID_NUM_THREADS`` in the usage guide).

    Examples
    --------
    >>> x, y = to_xy([0.0], [-90.0], "EPSG:6932")
    >>> float(x[0]), float(y[0])
    (0.0, 0.0)
    """
    lon = np.ascontiguousarray(lon, dtype=np.float64)
    lat = np.ascontiguousarray(lat, dtype=np.float64)
    project = _projector(crs)
    threads = threads or min(_threads.count(), 2)
    if threads <= 1 or lon.size < 200_000:
        return project(lon, lat)
    bounds = np.linspace(0, lon.size, threads + 1).astype(int)
    x, y = np.empty_like(lon), np.empty_like(lat)

    def run(i):
        a, b = bounds[i], bounds[i + 1]
        x[a:b], y[a:b] = project(lon[a:b], lat[a:b])

    _threads.each(threads, run)  # the process's pool: a pool per call started its threads for every granule
    return x, y


def _projector(crs: str):
    """A function (lon, lat) -> (x, y) for ``crs``: closed form for EASE-Grid 2.0, else PROJ."""
    pole = laea.EASE2_POLES.get(str(crs).upper())
    if pole is not None:
        return lambda lon, lat: laea.polar_laea_xy(lon, lat, pole)
    from pyproj import Transformer

    # a Transformer per call: PROJ objects must not be shared between threads
    return lambda lon, lat: Transformer.from_crs("EPSG:4326", crs, always_xy=True).transform(lon, lat)


def to_lonlat(x, y, crs) -> tuple[np.ndarray, np.ndarray]:
    """Projected ``crs`` metres to longitude/latitude (WGS84 degrees)."""
    from pyproj import Transformer

    return Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform(x, y)


def ease2_grid(hemisphere: str, res: float) -> Grid:
    """The global EASE-Grid 2.0 polar grid of one hemisphere at a standard cell size.

    Examples
    --------
    >>> ease2_grid("north", 6250).name
    'EASE2_N6.25km'
    >>> ease2_grid("north", 7000)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    is2grid.errors.GridError: res=7000: not a standard EASE-Grid 2.0 cell size. Use one of (m): 100000, ...
    """
    hemisphere = _check_hemisphere(hemisphere)
    try:
        n = EASE2_CELLS[float(res)]
    except (KeyError, TypeError, ValueError):
        sizes = ", ".join(f"{s:g}" for s in EASE2_CELLS)
        raise GridError(f"res={res!r}: not a standard EASE-Grid 2.0 cell size. Use one of (m): {sizes}.") from None
    epsg = 6931 if hemisphere == "north" else 6932
    name = f"EASE2_{hemisphere[0].upper()}{float(res) / 1000:g}km"
    return Grid(name, f"EPSG:{epsg}", float(res), -EASE2_EXTENT, EASE2_EXTENT, n, n)


def nsidc_polar_stereo_grid(hemisphere: str) -> Grid:
    """The NSIDC sea ice polar stereographic 25 km grid (ATL20's grid): EPSG:3411 304x448 / EPSG:3412 316x332."""
    hemisphere = _check_hemisphere(hemisphere)
    if hemisphere == "north":
        return Grid("NSIDC_PS_N25km", "EPSG:3411", 25000.0, -3_850_000.0, 5_850_000.0, 448, 304)
    return Grid("NSIDC_PS_S25km", "EPSG:3412", 25000.0, -3_950_000.0, 4_350_000.0, 332, 316)


def grid_by_name(name: str, hemisphere: str, res: float | None = None) -> Grid:
    """A grid by name: ``"ease2"`` (with ``res``), ``"ease2_6250"``, or ``"nsidc_ps25"`` (ATL20's grid).

    Examples
    --------
    >>> grid_by_name("ease2", "north", res=25000).name
    'EASE2_N25km'
    >>> grid_by_name("nsidc_ps25", "south").crs
    'EPSG:3412'
    """
    key = name.lower().replace("-", "_")
    if key in ("nsidc_ps25", "polar_stereo", "ps25", "atl20"):
        return nsidc_polar_stereo_grid(hemisphere)
    if key == "ease2":
        return ease2_grid(hemisphere, 6250 if res is None else res)
    if key.startswith("ease2_"):
        try:
            size = float(key.split("_", 1)[1])
        except ValueError:
            size = None
        if size is not None:
            return ease2_grid(hemisphere, size)
    raise GridError(f"grid={name!r}: unknown grid. Use 'ease2' (with res=), 'ease2_<metres>', 'nsidc_ps25' or a Grid.")


def _check_hemisphere(hemisphere: str) -> str:
    if hemisphere not in HEMISPHERES:
        raise GridError(f"hemisphere={hemisphere!r}: use 'north' or 'south'.")
    return hemisphere
