"""What to grid and how: a :class:`GridRequest` (grid, time bins, filters, extent), validated once.

The accessor, :func:`is2grid.grid.gridding.grid_segments`, :func:`is2grid.workflow.grid_granules` and the
command line all build one of these from the same keyword arguments, so the options are spelled
and checked in one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from is2grid.errors import GridError
from is2grid.grid.grids import Grid, grid_by_name
from is2grid.products import ATL10, Product, icesat2
from is2grid.products import product as as_product
from is2grid.products.base import ROLES

__all__ = ["Filters", "GridRequest", "TimeBins"]

FILL_THRESHOLD = 1e38  # un-masked float32 fill (3.4028235e38) when opened with mask_and_scale=False
_ANCHORS = ("1970-01-01", "2101-01-01")


@dataclass(frozen=True)
class Filters:
    """Which segments count. Always: a finite non-fill value, length > 0, finite position (as ATL20).

    Examples
    --------
    >>> f = Filters(value_range=(0.0, 2.0))
    >>> f.mask(lat=np.array([-70.0, -70.0]), lon=np.zeros(2), length=np.ones(2), value=np.array([1.0, 3.0]))
    array([ True, False])
    """

    segment_types: tuple[int, ...] | None = None
    max_quality: int | None = None
    value_range: tuple[float, float] | None = None
    lonlat_box: tuple[float, float, float, float] | None = None
    #: segments in the other hemisphere are an error, not silently projected onto this one's grid
    hemisphere: str | None = None
    #: the names of the gridded variable, the surface type and the quality flag, in the product
    variable: str = ATL10.variable
    type_variable: str = ATL10.segment_type
    quality_variable: str = ATL10.quality_flag

    def needs(self) -> tuple[str, ...]:
        """The variables these filters read beyond the coordinates, the length and the gridded variable."""
        extra = []
        if self.segment_types is not None:
            extra.append(self.type_variable)
        if self.max_quality is not None:
            extra.append(self.quality_variable)
        return tuple(extra)

    def mask(self, lat, lon, length, value, seg_type=None, quality=None) -> np.ndarray:
        """True for the segments that count."""
        with np.errstate(invalid="ignore"):
            keep = (
                np.isfinite(value)
                & (np.abs(value) < FILL_THRESHOLD)
                & np.isfinite(length)
                & (length > 0)
                & (length < FILL_THRESHOLD)
            )
            keep &= np.isfinite(lat) & np.isfinite(lon) & (np.abs(lat) <= 90)
            if self.segment_types is not None:
                keep &= np.isin(seg_type, np.asarray(self.segment_types))
            if self.max_quality is not None:
                keep &= (quality >= 1) & (quality <= self.max_quality)
            if self.value_range is not None:
                keep &= (value >= self.value_range[0]) & (value <= self.value_range[1])
            if self.lonlat_box is not None:
                lon_min, lat_min, lon_max, lat_max = self.lonlat_box
                in_lon = (
                    (lon >= lon_min) & (lon <= lon_max) if lon_min <= lon_max else (lon >= lon_min) | (lon <= lon_max)
                )
                keep &= in_lon & (lat >= lat_min) & (lat <= lat_max)
        if self.hemisphere is not None:
            wrong = keep & ((lat < 0) if self.hemisphere == "north" else (lat > 0))
            if wrong.any():
                raise GridError(
                    f"segments from both hemispheres (hemisphere={self.hemisphere!r} but {int(wrong.sum())} segments "
                    "lie in the other one). Grid each hemisphere separately: split the Dataset, e.g. "
                    "ds.where(ds.latitude < 0, drop=True) for the south."
                )
        return keep

    def describe(self) -> str:
        """The filters in words, for the result's ``filters`` attribute."""
        parts = [f"finite non-fill {self.variable}", "height_segment_length_seg > 0", "finite latitude/longitude"]
        if self.segment_types is not None:
            parts.append(f"{self.type_variable} in {list(self.segment_types)}")
        if self.max_quality is not None:
            parts.append(f"1 <= {self.quality_variable} <= {self.max_quality}")
        if self.value_range is not None:
            parts.append(f"{self.value_range[0]} <= {self.variable} <= {self.value_range[1]}")
        if self.lonlat_box is not None:
            parts.append(f"inside lon/lat box {list(self.lonlat_box)}")
        return "; ".join(parts)


@dataclass(frozen=True)
class TimeBins:
    """Time bins of a pandas frequency, anchored independently of the data (so partial results combine).

    Fixed frequencies ("1D", "7D", "6h") count bins from 1970-01-01; calendar ones ("MS", "W-MON",
    "QS") use the calendar's own anchors. ``freq=None`` puts everything in one bin.

    Examples
    --------
    >>> bins = TimeBins("1D")
    >>> t = np.array(["2019-09-15T23:59:59", "2019-09-16T00:00:00"], dtype="datetime64[ns]")
    >>> bins.starts(bins.ordinals(t))
    array(['2019-09-15T00:00:00.000000000', '2019-09-16T00:00:00.000000000'],
          dtype='datetime64[ns]')
    """

    freq: str | None
    _step: int | None = field(default=None, init=False, repr=False, compare=False)
    _anchors: Any = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self):
        if self.freq is None:
            return
        from pandas.tseries.frequencies import to_offset
        from pandas.tseries.offsets import Tick

        try:
            offset = to_offset(self.freq)
        except (ValueError, TypeError) as err:
            raise GridError(
                f"freq={self.freq!r}: not a pandas frequency. "
                "Use e.g. '1D' (daily, like ATL20), '7D', 'MS' (monthly) or None."
            ) from err
        if offset.n <= 0:
            raise GridError(f"freq={self.freq!r}: a time bin must be longer than zero. Use e.g. '1D', '7D' or 'MS'.")
        if isinstance(offset, Tick):
            object.__setattr__(self, "_step", int(pd.Timedelta(offset).value))
        else:
            anchors = pd.date_range(offset.rollback(pd.Timestamp(_ANCHORS[0])), _ANCHORS[1], freq=offset)
            object.__setattr__(self, "_anchors", anchors.values.astype("datetime64[ns]"))

    def ordinals(self, times) -> np.ndarray:
        """The bin number of each time (int64; comparable across batches)."""
        t = np.asarray(times, dtype="datetime64[ns]")
        if self.freq is None:
            return np.zeros(t.shape, dtype=np.int64)
        ns = t.astype(np.int64)
        if self._step is not None:
            return np.floor_divide(ns, self._step)
        ordinal = np.searchsorted(self._anchors, t, side="right") - 1
        if ordinal.size and (ordinal.min() < 0 or ordinal.max() >= len(self._anchors) - 1):
            raise GridError(
                f"segment times outside {_ANCHORS[0]}..{_ANCHORS[1]} cannot be binned with freq={self.freq!r}."
            )
        return ordinal.astype(np.int64)

    def starts(self, ordinals) -> np.ndarray:
        """The UTC start of each bin (``NaT`` for ``freq=None``)."""
        ordinals = np.asarray(ordinals, dtype=np.int64)
        if self.freq is None:
            return np.full(ordinals.shape, np.datetime64("NaT", "ns"))
        if self._step is not None:
            return (ordinals * self._step).astype("datetime64[ns]")
        return self._anchors[ordinals]


@dataclass(frozen=True, eq=False)
class GridRequest:
    """One gridding request: the grid, time bins, filters and (optionally) a fixed extent.

    Build it with :meth:`create`, which validates every option once; everything downstream trusts it.

    Examples
    --------
    >>> r = GridRequest.create("ease2", res=25000, hemisphere="south", freq="1D", bbox=(160, -80, -150, -70),
    ...                        time_range=("2019-09-15", "2019-09-16"))
    >>> r.grid.name, r.window.shape, r.ordinals.size, r.fixed_extent
    ('EASE2_S25km', (51, 76), 2, True)
    """

    grid: Grid
    """The global grid (never a window): cell keys are counted on it."""
    hemisphere: str
    bins: TimeBins
    filters: Filters
    window: Grid | None = None
    """A fixed window of ``grid`` (from ``bbox``, ``bbox_xy`` or ``full_grid``); None: the data's extent."""
    time_range: tuple[np.datetime64, np.datetime64] | None = None
    min_segments: int = 1
    product: Product = ATL10
    """The product whose segments are gridded (its variable names)."""
    variable: str = ATL10.variable
    """The segment variable whose statistics are computed."""
    variable_attrs: dict[str, Any] | None = None
    """Attributes of a derived variable (one the product does not store), for its statistics."""

    @classmethod
    def create(
        cls,
        grid: Grid | str = "ease2",
        *,
        res: float | None = None,
        hemisphere: str | None = None,
        freq: str | None = "1D",
        bbox: tuple[float, float, float, float] | None = None,
        bbox_xy: tuple[float, float, float, float] | None = None,
        full_grid: bool = False,
        time_range: tuple[Any, Any] | None = None,
        segment_types: tuple[int, ...] | list[int] | None = None,
        max_quality: int | None = None,
        value_range: tuple[float, float] | None = None,
        fb_range: tuple[float, float] | None = None,
        min_segments: int = 1,
        product: Product | str | None = None,
        variable: str | None = None,
    ) -> GridRequest:
        """Check the gridding options and resolve them into a request.

        Parameters
        ----------
        grid : Grid or str
            A :class:`is2grid.grid.grids.Grid`, ``"ease2"`` (EASE-Grid 2.0 at ``res``), ``"ease2_<metres>"``
            or ``"nsidc_ps25"`` (ATL20's polar stereographic 25 km grid, EPSG:3411/3412).
        res : float, optional
            EASE-Grid 2.0 cell size in metres (default 6250), one of the standard sizes: 100000, 36000,
            25000, 24000, 12500, 10000, 9000, 6250, 5000, 3125, 3000, 1562.5 or 1000.
        hemisphere : {"north", "south"}
            Needed to resolve a grid name; a Grid knows its own.
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
            Fixes the time axis to the bins from ``start`` to ``end`` (inclusive). With dask input,
            giving it and one of ``bbox``/``bbox_xy``/``full_grid`` is what keeps the result lazy.
        segment_types : sequence of int, optional
            Keep these ``height_segment_type`` values only, e.g. ``(1,)`` for sea ice without leads.
        max_quality : int, optional
            Keep ``1 <= flag <= max_quality`` of the product's quality flag (ATL10 ``beam_fb_quality_flag``,
            ATL07 ``height_segment_fit_quality_flag``).
        value_range : (lo, hi), optional
            Keep values of the gridded variable in this closed range (its units).
        fb_range : (lo, hi), optional
            The same as ``value_range`` (its name when only freeboard could be gridded).
        min_segments : int
            Statistics are NaN in cells with fewer segments (``n_segments`` still counts them).
        product : {"ATL10", "ATL07"} or Product, optional
            Whose segments these are (default ATL10): it names the variables read.
        variable : str, optional
            The numeric per-segment variable to grid (default the product's: ATL10 ``beam_fb_height``,
            ATL07 ``height_segment_height``). Its statistics are named ``mean_<stem>`` and
            ``std_<stem>``, the stem being a short name for the defaults (``fb``, ``height``) and the
            variable's own name otherwise.

        Returns
        -------
        GridRequest

        Raises
        ------
        is2grid.GridError
            Naming the option, what is wrong with it and what to give instead.
        """
        if isinstance(grid, Grid):
            grid = grid.full()
            hemisphere = hemisphere or grid.hemisphere
        elif isinstance(grid, str):
            if hemisphere not in ("north", "south"):
                raise GridError(
                    f"hemisphere={hemisphere!r}: use 'north' or 'south' (needed to pick the {grid!r} grid)."
                )
            grid = grid_by_name(grid, hemisphere, res)
        else:
            raise GridError(
                f"grid={grid!r}: pass an is2grid.grid.grids.Grid or a grid name such as 'ease2' or 'nsidc_ps25'."
            )
        if hemisphere not in ("north", "south"):
            raise GridError(f"hemisphere={hemisphere!r}: use 'north' or 'south'.")
        if sum(x is not None and x is not False for x in (bbox, bbox_xy, full_grid)) > 1:
            raise GridError("give at most one of bbox=, bbox_xy= and full_grid=True.")
        if isinstance(min_segments, bool) or not isinstance(min_segments, int | np.integer) or min_segments < 1:
            raise GridError(f"min_segments={min_segments!r}: must be a whole number >= 1.")
        try:
            chosen = as_product(product if product is not None else ATL10)
        except ValueError as err:
            raise GridError(str(err)) from err
        variable = _variable(chosen, variable)
        if value_range is not None and fb_range is not None:
            raise GridError("give value_range= or fb_range= (the same filter), not both.")
        range_name = "value_range"  # fb_range is its old name: one name in the messages
        filters = Filters(
            segment_types=None if segment_types is None else tuple(int(s) for s in segment_types),
            max_quality=max_quality,
            value_range=_pair(range_name, value_range if value_range is not None else fb_range),
            lonlat_box=_lonlat_box(bbox, hemisphere),
            hemisphere=hemisphere,
            variable=variable,
            type_variable=chosen.segment_type,
            quality_variable=chosen.quality_flag,
        )
        if filters.value_range is not None and filters.value_range[0] > filters.value_range[1]:
            raise GridError(f"{range_name}={filters.value_range!r}: lower bound above upper bound.")
        if full_grid:
            window = grid
        elif bbox_xy is not None:
            window = grid.window_for_xy(*_numbers("bbox_xy", bbox_xy, 4))
        elif filters.lonlat_box is not None:
            window = grid.window_for_lonlat(*filters.lonlat_box)
        else:
            window = None
        return cls(
            grid,
            hemisphere,
            TimeBins(freq),
            filters,
            window,
            _time_range(time_range),
            int(min_segments),
            chosen,
            variable,
        )

    @property
    def needed(self) -> tuple[str, ...]:
        """The segment variables this request reads: coordinates, length, the gridded variable, filters'."""
        names = (*icesat2.COORDINATES, self.product.length, self.variable, *self.filters.needs())
        return tuple(dict.fromkeys(names))

    @property
    def statistics(self) -> dict[str, tuple[str, dict[str, str]]]:
        """Role -> (name, CF attributes) of the four statistics (see :meth:`is2grid.products.Product.statistics`)."""
        return self.product.statistics(self.variable, self.variable_attrs)

    @property
    def names(self) -> tuple[str, ...]:
        """The statistics' names in the reduction's order: count, mean length, mean, standard deviation."""
        stats = self.statistics
        return tuple(stats[role][0] for role in ROLES)

    @property
    def target(self) -> Grid:
        """The grid sums are restricted to: the fixed window, or the whole grid."""
        return self.window if self.window is not None else self.grid

    @property
    def ordinals(self) -> np.ndarray | None:
        """The fixed time-bin ordinals, or None when the data decide."""
        if self.bins.freq is None:
            return np.zeros(1, dtype=np.int64)
        if self.time_range is None:
            return None
        first, last = self.bins.ordinals(np.array(self.time_range))
        return np.arange(first, last + 1, dtype=np.int64)

    @property
    def fixed_extent(self) -> bool:
        """Whether the output's shape is known before any data is read (what keeps dask input lazy)."""
        return self.window is not None and self.ordinals is not None

    def describe(self) -> str:
        """Filters and thresholds in words."""
        text = self.filters.describe()
        if self.min_segments > 1:
            text += f"; statistics need >= {self.min_segments} segments per cell"
        return text


def _variable(product: Product, variable: str | None) -> str:
    """The variable to grid: one the product stores (numeric) or a derived one (checked on the data later)."""
    if variable is None:
        return product.variable
    if not isinstance(variable, str) or not variable:
        raise GridError(f"variable={variable!r}: give the name of a segment variable, e.g. {product.variable!r}.")
    if variable in icesat2.COORDINATES:
        raise GridError(
            f"variable={variable!r} is a coordinate of the segments, which places them: grid a value such as "
            f"{product.variable!r}."
        )
    if variable not in product.segment_variables:
        return variable  # a derived variable (thickness, a difference...): the Dataset must have it
    if not _numeric(product, variable):
        raise GridError(f"variable={variable!r}: {product.name} stores it as text, which has no mean. Grid a number.")
    return variable


def _numeric(product: Product, name: str) -> bool:
    return product.variable_dtype("{beam}/" + product.segment_variables[name]).kind in "iuf"


def _numbers(name: str, values, n: int) -> tuple[float, ...]:
    try:
        out = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        out = ()
    if len(out) != n:
        raise GridError(f"{name}={values!r}: expected {n} numbers.")
    return out


def _pair(name: str, values) -> tuple[float, float] | None:
    return None if values is None else _numbers(name, values, 2)  # type: ignore[return-value]


def _lonlat_box(bbox, hemisphere: str) -> tuple[float, float, float, float] | None:
    if bbox is None:
        return None
    lon_min, lat_min, lon_max, lat_max = _numbers("bbox", bbox, 4)
    if not (-180 <= lon_min <= 180 and -180 <= lon_max <= 180 and -90 <= lat_min < lat_max <= 90):
        raise GridError(
            f"bbox={tuple(bbox)!r}: expected (lon_min, lat_min, lon_max, lat_max) in degrees, lon in [-180, 180], "
            "lat_min < lat_max; lon_min > lon_max means the box crosses the antimeridian."
        )
    if (hemisphere == "south" and lat_min >= 0) or (hemisphere == "north" and lat_max <= 0):
        raise GridError(
            f"bbox={tuple(bbox)!r} lies in the other hemisphere than the {hemisphere}ern granules. "
            "bbox is (lon_min, lat_min, lon_max, lat_max): check the order."
        )
    return lon_min, lat_min, lon_max, lat_max


def _time_range(time_range) -> tuple[np.datetime64, np.datetime64] | None:
    if time_range is None:
        return None
    try:
        start, end = (np.datetime64(pd.Timestamp(t).to_datetime64(), "ns") for t in time_range)
    except (TypeError, ValueError) as err:
        raise GridError(
            f"time_range={time_range!r}: expected (start, end) dates such as ('2019-09-01', '2019-09-30')."
        ) from err
    if end < start:
        raise GridError(f"time_range={time_range!r}: end before start.")
    return start, end
