"""Sea ice thickness from ATL10 freeboard segments: snow from a climatology, a user's grid or zero ice freeboard.

:func:`thickness` adds ``snow_depth``, ``snow_density``, ``ice_thickness`` and their uncertainties to
the segments; ``to_ease2(variable="ice_thickness")`` grids them. The equations, constants and references
are in :mod:`is2grid.thickness.hydrostatic`, :mod:`is2grid.thickness.w99` and the Thickness page of the
documentation.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from is2grid.errors import GridError
from is2grid.products import ATL10, icesat2, of_dataset
from is2grid.thickness import hydrostatic, w99
from is2grid.thickness.sampling import sample

__all__ = ["ATTRS", "DEFAULTS", "METHOD", "NEEDS", "OUTPUTS", "SNOW_OPTIONS", "describe", "thickness"]

SNOW_OPTIONS = ("w99", "mw99", "zero_ice_freeboard")
#: what thickness reads from the segments besides their coordinates: ATL10's total freeboard and its uncertainty
NEEDS = (ATL10.variable, "beam_fb_unc")

#: what the outputs are, per segment (the statistics of a gridded output are described from these)
ATTRS: dict[str, dict[str, Any]] = {
    "snow_depth": {"standard_name": "surface_snow_thickness",
                   "long_name": "snow depth on sea ice (capped at the total freeboard)", "units": "m"},
    "snow_density": {"standard_name": "snow_density", "long_name": "snow density", "units": "kg m-3"},
    "ice_thickness": {"standard_name": "sea_ice_thickness", "long_name": "sea ice thickness", "units": "m"},
    "ice_thickness_unc": {"standard_name": "sea_ice_thickness standard_error",
                          "long_name": "sea ice thickness uncertainty (one sigma, first order)", "units": "m",
                          "comment": "from the freeboard, snow depth, snow and ice density uncertainties, independent; "
                          "gridded, its length-weighted mean is the mean segment uncertainty, not the uncertainty of "
                          "the cell mean"},
    "snow_depth_unc": {"standard_name": "surface_snow_thickness standard_error",
                       "long_name": "snow depth uncertainty (one sigma)", "units": "m"},
    "snow_outside_climatology": {
        "long_name": f"segment outside the domain of the W99 fit (south of {w99.DOMAIN_MIN_LATITUDE} N)",
        "flag_values": np.array([0, 1], dtype=np.int8), "flag_meanings": "inside_w99_domain outside_w99_domain",
        "comment": "W99 values there are extrapolations of the fit; always 0 for other snow sources"},
}  # fmt: skip

#: the variables :func:`thickness` adds (``to_ease2(variable=...)`` grids any of them)
OUTPUTS = tuple(ATTRS)

#: default constants and their one-sigma uncertainties, with where they come from
DEFAULTS = {
    "rho_water": (1024.0, "sea water density, kg m-3 (Wadhams et al. 1992; Petty et al. 2020)"),
    "rho_ice": (916.7, "sea ice density, kg m-3: first-year ice, Alexandrov et al. (2010)"),
    "sigma_rho_ice": (35.7, "its uncertainty, kg m-3: the first-year ice spread of Alexandrov et al. (2010)"),
    "rho_snow": (300.0, "snow density when the snow source gives none, kg m-3 (Warren et al. 1999 means; "
                 "Kurtz and Markus 2012)"),
    "sigma_rho_snow": (40.0, "snow density uncertainty, kg m-3 (the monthly spread in Warren et al. 1999)"),
    "sigma_snow_depth": (0.06, "snow depth uncertainty, m: the rms error of the W99 fit, 4-8 cm (Warren et "
                         "al. 1999, Table 1); also used for a user's snow field unless given"),
}  # fmt: skip


METHOD = (
    "hydrostatic balance on total freeboard: h_i = rho_w/(rho_w - rho_i) fb - (rho_w - rho_s)/(rho_w - rho_i) h_s, "
    "snow depth capped at the freeboard (Petty et al. 2020)"
)


def describe(
    snow: Any = "w99",
    *,
    rho_water: float = DEFAULTS["rho_water"][0],
    rho_ice: float = DEFAULTS["rho_ice"][0],
    rho_snow: float | None = None,
    method: str = "nearest",
    **ignored: Any,
) -> dict[str, str]:
    """The ``source``, ``method`` and ``constants`` attributes of what :func:`thickness` makes with these options.

    Examples
    --------
    >>> describe("zero_ice_freeboard")["source"]
    'zero ice freeboard: snow depth = total freeboard (Kurtz and Markus 2012)'
    """
    if isinstance(snow, str):
        source = {
            "w99": "Warren et al. (1999) climatology (W99), at each segment's position and month",
            "mw99": "modified W99 (W99 halved over first-year ice; Kurtz and Farrell 2011, Petty et al. 2020)",
            "zero_ice_freeboard": "zero ice freeboard: snow depth = total freeboard (Kurtz and Markus 2012)",
        }.get(snow, snow)
    else:
        name = getattr(snow, "name", None) or ("snow_depth" if isinstance(snow, xr.Dataset) else "")
        source = f"the user's snow field {name}, {method} sampling".replace("  ", " ")
    density = f"{rho_snow} kg m-3" if rho_snow is not None else "from the snow source (300 kg m-3 if it gives none)"
    constants = f"rho_water={rho_water} kg m-3, rho_ice={rho_ice} kg m-3, rho_snow={density}"
    return {"source": source, "method": METHOD, "constants": constants}


def thickness(
    ds: xr.Dataset,
    snow: str | xr.DataArray | xr.Dataset = "w99",
    *,
    rho_water: float = DEFAULTS["rho_water"][0],
    rho_ice: float = DEFAULTS["rho_ice"][0],
    rho_snow: float | None = None,
    first_year_ice: float | xr.DataArray | None = None,
    method: str = "nearest",
    crs: Any = None,
    sigma_freeboard: float | None = None,
    sigma_snow_depth: float = DEFAULTS["sigma_snow_depth"][0],
    sigma_rho_ice: float = DEFAULTS["sigma_rho_ice"][0],
    sigma_rho_snow: float = DEFAULTS["sigma_rho_snow"][0],
) -> xr.Dataset:
    """Snow depth and density, sea ice thickness and their uncertainties at every ATL10 segment.

    Parameters
    ----------
    ds : xarray.Dataset
        ATL10 segments (one or many granules, lazy or loaded) with ``beam_fb_height`` (total freeboard),
        ``latitude``, ``longitude``, ``delta_time`` as UTC and, for the uncertainty, ``beam_fb_unc`` (or
        give ``sigma_freeboard``).
    snow : {"w99", "mw99", "zero_ice_freeboard"}, DataArray or Dataset
        ``"w99"``: the Warren et al. (1999) Arctic climatology at each segment's position and month (UTC),
        density = SWE / depth. ``"mw99"``: W99 halved over first-year ice (Kurtz and Farrell 2011; Petty
        et al. 2020), with ``first_year_ice`` the first-year ice fraction (0-1; a constant or a field on
        any grid). A DataArray of snow depth (m), or a Dataset with ``snow_depth`` and optionally
        ``snow_density``, on lat/lon or projected x/y, with or without time (e.g. a NESOSIM or AMSR2
        file): sampled at each segment (``method``). ``"zero_ice_freeboard"``: the total freeboard taken
        as the snow depth (Kurtz and Markus 2012), for the Southern Ocean; it underestimates thickness
        where flooding or thin snow leaves an ice freeboard.
    rho_water, rho_ice : float
        Densities, kg m-3 (defaults: :data:`DEFAULTS`).
    rho_snow : float, optional
        Snow density, kg m-3; None takes the snow source's (W99's, the Dataset's ``snow_density``), or 300.
    first_year_ice : float or DataArray, optional
        For ``"mw99"``: the fraction of first-year ice, 0 (multi-year) to 1.
    method : {"nearest", "linear"}
        How a user's field is sampled at the segments.
    crs : optional
        The CRS of a user field on x/y that carries no grid mapping.
    sigma_freeboard : float, optional
        Freeboard uncertainty (m) when the segments have no ``beam_fb_unc``.
    sigma_snow_depth, sigma_rho_ice, sigma_rho_snow : float
        One-sigma uncertainties (m, kg m-3) propagated to first order (see
        :func:`is2grid.thickness.hydrostatic.ice_thickness_uncertainty`).

    Returns
    -------
    xarray.Dataset
        ``ds`` with :data:`OUTPUTS` on ``segment``, each with units, CF standard names where they exist,
        and attributes stating the method, constants and sources.

    Raises
    ------
    is2grid.GridError
        For a snow option that does not fit the hemisphere (W99 is Arctic only), a field that does not
        cover the segments or their times, ATL07 segments (heights, not freeboard), or missing variables.

    Examples
    --------
    >>> import tempfile
    >>> from is2grid import tutorial
    >>> path = tutorial.write_granule(tempfile.mkdtemp(), hemisphere="north", start="2019-03-15", n_segments=500)
    >>> ds = xr.open_dataset(path, engine="atl10").is2grid.thickness(snow="w99")
    >>> ds.ice_thickness.attrs["standard_name"], ds.ice_thickness.attrs["units"]
    ('sea_ice_thickness', 'm')
    """
    product = of_dataset(ds)
    if product.name != "ATL10":
        raise GridError(
            f"thickness needs total freeboard (ATL10's beam_fb_height); these are {product.name} segments. Open "
            "the ATL10 granules of the same tracks with engine='atl10'."
        )
    for name in ("beam_fb_height", "latitude", "longitude", "delta_time"):
        if name not in ds.variables:
            raise GridError(f"thickness needs {name!r}; open the granule with the default variables.")
    if "beam_fb_unc" not in ds.variables and sigma_freeboard is None:
        raise GridError(
            "thickness needs the freeboard uncertainty for its own: open with the default variables (they "
            "include beam_fb_unc) or pass sigma_freeboard= (m)."
        )
    times = np.asarray(ds["delta_time"].values)
    if times.dtype.kind != "M":
        raise GridError("delta_time must be UTC datetimes: open the granule with the default decode_times=True.")
    lat = np.asarray(ds["latitude"].values, dtype=np.float64)
    lon = np.asarray(ds["longitude"].values, dtype=np.float64)
    fb = np.asarray(ds["beam_fb_height"].values, dtype=np.float64)
    sigma_fb = (
        np.asarray(ds["beam_fb_unc"].values, dtype=np.float64) if "beam_fb_unc" in ds.variables else sigma_freeboard
    )
    hemisphere = icesat2.hemisphere_of_dataset(ds) if lat.size else ds.attrs.get("hemisphere")
    outside = np.zeros(lat.shape, dtype=bool)
    sigma_hs = np.full(lat.shape, float(sigma_snow_depth))
    if isinstance(snow, str):
        if snow not in SNOW_OPTIONS:
            raise GridError(f"snow={snow!r}: use one of {SNOW_OPTIONS}, or give a snow depth DataArray or Dataset.")
        if snow in ("w99", "mw99"):
            if hemisphere != "north":
                raise GridError(
                    f"snow={snow!r} is the Warren et al. (1999) Arctic climatology, and these segments are "
                    f"{hemisphere}ern. For the Southern Ocean use snow='zero_ice_freeboard' or your own snow field."
                )
            month = (times.astype("datetime64[M]").astype(np.int64) % 12) + 1
            depth, density = w99.depth_and_density(lat, lon, month)
            outside = lat < w99.DOMAIN_MIN_LATITUDE
            if snow == "mw99":
                if first_year_ice is None:
                    raise GridError(
                        "snow='mw99' halves W99 over first-year ice: give first_year_ice= (the first-year ice "
                        "fraction 0-1, a constant or a field on any grid, e.g. from OSI SAF ice type)."
                    )
                fyi = _field(first_year_ice, lat, lon, times, "nearest", crs, "first_year_ice")
                if np.any((fyi < 0) | (fyi > 1)):
                    raise GridError("first_year_ice must be a fraction between 0 and 1.")
                depth = depth * (1.0 - 0.5 * fyi)
                sigma_hs = sigma_hs * (1.0 - 0.5 * fyi)
        else:  # zero ice freeboard
            depth, density = fb.copy(), np.full(lat.shape, np.nan)
            sigma_hs = np.zeros(lat.shape)
    else:
        depth_field, density_field = _user_fields(snow)
        depth = sample(depth_field, lat, lon, times, method=method, crs=crs, what="the snow depth field")
        density = (
            sample(density_field, lat, lon, times, method=method, crs=crs, what="the snow density field")
            if density_field is not None
            else np.full(lat.shape, np.nan)
        )
    if rho_snow is not None:
        density = np.full(lat.shape, float(rho_snow))
    density = np.where(np.isfinite(density), density, DEFAULTS["rho_snow"][0])
    zero_fb = isinstance(snow, str) and snow == "zero_ice_freeboard"
    h, used = hydrostatic.ice_thickness(fb, depth, rho_water, rho_ice, density)
    sigma_h = hydrostatic.ice_thickness_uncertainty(
        fb, depth, rho_water, rho_ice, density, sigma_fb, sigma_hs, sigma_rho_ice, sigma_rho_snow
    )
    if zero_fb:
        sigma_used = np.asarray(sigma_fb, dtype=np.float64) * np.ones(lat.shape)
    else:
        sigma_used = np.where(depth >= fb, np.asarray(sigma_fb) * np.ones(lat.shape), sigma_hs)
    dims = ds["latitude"].dims
    common = describe(snow, rho_water=rho_water, rho_ice=rho_ice, rho_snow=rho_snow, method=method)
    values = {
        "snow_depth": used,
        "snow_density": density,
        "ice_thickness": h,
        "ice_thickness_unc": sigma_h,
        "snow_depth_unc": sigma_used,
    }
    out = ds.assign({name: (dims, data, {**ATTRS[name], **common}) for name, data in values.items()})
    out["snow_outside_climatology"] = (dims, outside.astype(np.int8), dict(ATTRS["snow_outside_climatology"]))
    out.attrs["thickness_method"] = f"{common['method']}; snow: {common['source']}; {common['constants']}"
    return out


def _user_fields(snow) -> tuple[xr.DataArray, xr.DataArray | None]:
    if isinstance(snow, xr.DataArray):
        return snow, None
    if isinstance(snow, xr.Dataset):
        if "snow_depth" not in snow.data_vars:
            raise GridError(
                f"the snow Dataset has {sorted(map(str, snow.data_vars))}: it needs a 'snow_depth' variable (m), "
                "and may have 'snow_density' (kg m-3). Rename yours, or pass the depth DataArray itself."
            )
        return snow["snow_depth"], snow.get("snow_density")
    raise GridError(f"snow={type(snow).__name__}: give 'w99', 'mw99', 'zero_ice_freeboard', a DataArray or a Dataset.")


def _field(value, lat, lon, times, method, crs, what) -> np.ndarray:
    if isinstance(value, xr.DataArray):
        return sample(value, lat, lon, times, method=method, crs=crs, what=what)
    return np.full(np.shape(lat), float(value))
