"""Regenerate the bundled Natural Earth 1:110m outlines in ``src/is2grid/viz/data/``.

Natural Earth is in the public domain (naturalearthdata.com). The source here is the 1:110m
admin-0 countries file that pyogrio ships as a test fixture; the countries are dissolved into
land. Two forms are written:

- ``coastlines_110m.npz``: the land outlines as arrays, for is2grid's own maps;
- ``natural_earth/physical/ne_110m_land.shp`` and ``ne_110m_coastline.shp``: shapefiles laid out
  as cartopy keeps Natural Earth, so cartopy, GeoViews and hvplot (``coastline=True``,
  ``features=["land"]``) find them instead of downloading (see :mod:`is2grid.viz.geo`).

Usage: ``python tools/make_coastlines.py``
"""

from pathlib import Path

import geopandas
import numpy as np
import pyogrio
import shapely

SOURCE = Path(pyogrio.__file__).parent / "tests/fixtures/naturalearth_lowres/naturalearth_lowres.shp"
DATA = Path(__file__).parents[1] / "src/is2grid/viz/data"


def main():
    frame = pyogrio.read_dataframe(SOURCE)
    land = shapely.union_all(shapely.make_valid(frame.geometry.values))
    polygons = list(getattr(land, "geoms", [land]))
    rings = []
    for polygon in polygons:
        rings.append(np.asarray(polygon.exterior.coords, dtype=np.float32))
        rings.extend(np.asarray(r.coords, dtype=np.float32) for r in polygon.interiors)
    lengths = np.array([len(r) for r in rings], dtype=np.int32)
    np.savez_compressed(DATA / "coastlines_110m.npz", lonlat=np.concatenate(rings), lengths=lengths)
    print(f"coastlines_110m.npz: {len(rings)} rings, {lengths.sum()} points")

    from is2grid.viz.coastlines import coastlines

    coastlines.cache_clear()
    folder = DATA / "natural_earth" / "physical"
    folder.mkdir(parents=True, exist_ok=True)
    lines = [shapely.LineString(line) for line in coastlines()]
    outputs = {
        "ne_110m_land": geopandas.GeoDataFrame({"featurecla": ["Land"] * len(polygons)}, geometry=polygons),
        "ne_110m_coastline": geopandas.GeoDataFrame({"featurecla": ["Coastline"] * len(lines)}, geometry=lines),
    }
    for name, table in outputs.items():
        table.set_crs("EPSG:4326").to_file(folder / f"{name}.shp", engine="pyogrio")
        print(f"{name}.shp: {len(table)} features")


if __name__ == "__main__":
    main()
