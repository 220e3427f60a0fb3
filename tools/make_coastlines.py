"""Regenerate ``src/is2grid/viz/data/coastlines_110m.npz``: Natural Earth 1:110m land outlines.

Natural Earth is in the public domain (naturalearthdata.com). The source here is the 1:110m
admin-0 countries file that pyogrio ships as a test fixture; the countries are dissolved into
land and only the outlines are kept, so quicklook maps have coastlines without a download
(cartopy fetches its Natural Earth files from the internet on first use).

Usage: ``python tools/make_coastlines.py``
"""

from pathlib import Path

import numpy as np
import pyogrio
import shapely

SOURCE = Path(pyogrio.__file__).parent / "tests/fixtures/naturalearth_lowres/naturalearth_lowres.shp"
TARGET = Path(__file__).parents[1] / "src/is2grid/viz/data/coastlines_110m.npz"


def main():
    frame = pyogrio.read_dataframe(SOURCE)
    land = shapely.union_all(shapely.make_valid(frame.geometry.values))
    rings = []
    for polygon in getattr(land, "geoms", [land]):
        rings.append(np.asarray(polygon.exterior.coords, dtype=np.float32))
        rings.extend(np.asarray(r.coords, dtype=np.float32) for r in polygon.interiors)
    lengths = np.array([len(r) for r in rings], dtype=np.int32)
    np.savez_compressed(TARGET, lonlat=np.concatenate(rings), lengths=lengths)
    print(f"{TARGET}: {len(rings)} rings, {lengths.sum()} points")


if __name__ == "__main__":
    main()
