"""Polar grids as values: CRS + origin + cell size + shape, and point -> cell indexing.

EASE-Grid 2.0 North/South (EPSG:6931/6932) at every standard cell size, and the NSIDC sea ice
polar stereographic 25 km grids (EPSG:3411/3412) that NASA's ATL20 uses. Cell (row, col) has its
centre at ``x = x0 + (col + 0.5) * res`` and ``y = y0 - (row + 0.5) * res``; a point belongs to the
grid only if its row and its column are each inside (checked separately, so a point past the right
edge can never alias into the next row).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from is2grid.errors import GridError

__all__ = ["EASE2_CELLS", "Grid", "ease2_grid", "grid_by_name", "nsidc_polar_stereo_grid"]

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
        return (self.nrows, self.ncols)

    @property
    def full_shape(self) -> tuple[int, int]:
        return self.parent_shape or self.shape

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


def grid_by_name(name: str, hemisphere: str) -> Grid:
    """``"ease2_6250"`` style names, or ``"nsidc_ps25"`` for the ATL20 polar stereographic grid."""
    key = name.lower().replace("-", "_")
    if key in ("nsidc_ps25", "polar_stereo", "ps25", "atl20"):
        return nsidc_polar_stereo_grid(hemisphere)
    if key.startswith("ease2_"):
        return ease2_grid(hemisphere, float(key.split("_", 1)[1]))
    raise GridError(f"grid={name!r}: unknown grid. Use 'nsidc_ps25', 'ease2_<metres>' or a Grid object.")


def _check_hemisphere(hemisphere: str) -> str:
    if hemisphere not in HEMISPHERES:
        raise GridError(f"hemisphere={hemisphere!r}: use 'north' or 'south'.")
    return hemisphere
