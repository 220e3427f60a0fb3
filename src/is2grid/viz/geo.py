"""hvplot, GeoViews and cartopy on is2grid's grids, with no network: workarounds kept until released.

``grid.mean_fb.hvplot.image(x="x", y="y", groupby="time", geo=True, coastline=True)`` needs four
things its libraries do not do on their own today. Each is installed the moment the library is
imported (``wrapt`` post-import hooks, registered by ``import is2grid``; xarray's backend discovery
imports is2grid too), so plain hvplot calls work on a grid from a NetCDF file, a Zarr store or memory:

1. **The grid's CRS.** hvplot reads a Dataset's CRS only through rioxarray's ``.rio`` accessor; without
   it registered it assumes longitude/latitude and draws metres as degrees, silently. rioxarray is
   imported with hvplot, and it reads the CF grid mapping (the ``crs`` coordinate) of every is2grid grid.
   hvplot then means to draw in that CRS (its ``output_projection``) but passes it to the plot only
   when ``projection=`` is given, so GeoViews reprojects a polar grid onto Web Mercator, where the
   pole is at infinity: a projected (not longitude/latitude) CRS is now passed on as the plot's.
2. **Extents in a polar projection.** GeoViews' ``project_extents`` projects the map's boundary into
   the data's CRS even when both are the same; for a polar Lambert azimuthal equal-area CRS that
   boundary (the antipode's circle) cannot be projected and cartopy raises ``ValueError: ... got a
   GeometryCollection``. The same-CRS case needs no projection: the patch answers it directly
   (upstream fix: compute ``dest_poly`` only when ``src_proj != dest_proj``; :data:`UPSTREAM_FIX`).
3. **Coastlines offline.** cartopy downloads Natural Earth on first use (``URLError`` offline and on
   many cluster nodes). The 1:110m land and coastline shapefiles ship with is2grid
   (``viz/data/natural_earth``) and cartopy's Natural Earth downloader looks there first, after a
   directory the user configured; other scales and layers are fetched as before.
"""

from __future__ import annotations

import os
import sys
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = ["NATURAL_EARTH", "UPSTREAM_FIX", "natural_earth_path", "register"]

#: the bundled Natural Earth files, laid out as cartopy keeps them: ``<category>/ne_<scale>_<name>.shp``
NATURAL_EARTH = Path(str(resources.files("is2grid.viz").joinpath("data/natural_earth")))

#: the change to ``geoviews/util.py`` (geoviews 1.15 and 1.16) that makes the patch below unnecessary
UPSTREAM_FIX = """\
     boundary_poly = Polygon(src_proj.boundary)
-    dest_poly = src_proj.project_geometry(Polygon(dest_proj.boundary), dest_proj).buffer(0)
     if src_proj != dest_proj:
+        dest_poly = src_proj.project_geometry(Polygon(dest_proj.boundary), dest_proj).buffer(0)
"""

_registered = False


def natural_earth_path(resolution: str, category: str, name: str) -> Path | None:
    """The bundled shapefile for a Natural Earth layer, or None if is2grid does not ship it.

    Examples
    --------
    >>> natural_earth_path("110m", "physical", "coastline").name
    'ne_110m_coastline.shp'
    >>> natural_earth_path("10m", "physical", "coastline") is None
    True
    """
    path = NATURAL_EARTH / category / f"ne_{resolution}_{name}.shp"
    return path if path.exists() else None


def register() -> None:
    """Install the workarounds when (or, if already imported, now that) each library is imported."""
    global _registered
    if _registered:
        return
    try:
        from wrapt import register_post_import_hook
    except ImportError:  # the core install has no plotting libraries to fix
        return
    _registered = True
    register_post_import_hook(_offline_natural_earth, "cartopy.io.shapereader")
    register_post_import_hook(_same_crs_extents, "geoviews.util")
    register_post_import_hook(_same_crs_extents, "geoviews.plotting.plot")
    register_post_import_hook(_crs_accessor, "hvplot.converter")


def _crs_accessor(module) -> None:
    try:
        import rioxarray  # noqa: F401  (registers .rio, through which hvplot reads a grid's CRS)
    except ImportError:
        pass
    converter = module.HoloViewsConverter
    if getattr(converter.__init__, "_is2grid", False):
        return
    original = converter.__init__

    def __init__(self, *args, **kwargs):
        original(self, *args, **kwargs)
        crs = getattr(self, "crs", None)
        if self.geo and crs is not None and not self.tiles and "projection" not in self._plot_opts:
            import cartopy.crs as ccrs

            if not isinstance(crs, ccrs.PlateCarree):
                self._plot_opts["projection"] = crs

    __init__._is2grid = True  # type: ignore[attr-defined]
    converter.__init__ = __init__


def _same_crs_extents(module) -> None:
    util: Any = sys.modules.get("geoviews.util")
    if util is None or getattr(util.project_extents, "_is2grid", False):
        return
    original = util.project_extents

    def project_extents(extents, src_proj, dest_proj, tol=1e-6):
        if src_proj != dest_proj:
            return original(extents, src_proj, dest_proj, tol)
        from shapely.geometry import Polygon

        x1, y1, x2, y2 = extents
        cy1, cy2 = src_proj.y_limits
        y1, y2 = max(y1, cy1) + tol, min(y2, cy2) - tol
        x1, x2 = util.wrap_cylindrical_projection_lons(src_proj, x1 + tol, x2 - tol)
        domain = Polygon([[x1, y1], [x2, y1], [x2, y2], [x1, y2], [x1, y1]])
        return Polygon(src_proj.boundary).intersection(domain).bounds

    project_extents._is2grid = True  # type: ignore[attr-defined]
    project_extents.__doc__ = original.__doc__
    for name, loaded in list(sys.modules.items()):
        if name.startswith("geoviews") and getattr(loaded, "project_extents", None) is original:
            setattr(loaded, "project_extents", project_extents)  # noqa: B010  (a module mypy cannot see)


def _offline_natural_earth(module) -> None:
    import cartopy

    key = ("shapefiles", "natural_earth")
    current = cartopy.config["downloaders"].get(key) or module.NEShpDownloader.default_downloader()
    if isinstance(current, _bundled_downloader(module)):
        return
    cartopy.config["downloaders"][key] = _bundled_downloader(module)(
        url_template=current.url_template,
        target_path_template=current.target_path_template,
        pre_downloaded_path_template=current.pre_downloaded_path_template,
    )


_classes: dict[int, type] = {}


def _bundled_downloader(shapereader) -> type:
    """A subclass of cartopy's Natural Earth downloader (made once cartopy is imported)."""
    if id(shapereader) not in _classes:

        class BundledFirst(shapereader.NEShpDownloader):
            """cartopy's Natural Earth downloader, which finds is2grid's bundled 1:110m files before downloading."""

            def pre_downloaded_path(self, format_dict):
                configured = super().pre_downloaded_path(format_dict)
                if configured is not None and os.path.exists(configured):
                    return configured
                keys = (format_dict.get("resolution"), format_dict.get("category"), format_dict.get("name"))
                bundled = natural_earth_path(*keys) if all(keys) else None
                return bundled if bundled is not None else configured

        _classes[id(shapereader)] = BundledFirst
    return _classes[id(shapereader)]
