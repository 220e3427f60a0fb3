"""Synthetic ATL10 v006 and ATL07 granules that code cannot tell from real ones by structure.

Same groups, names, dtypes, 10000-element chunks, deflate 6 (shuffle first on integers),
attributes stored as real granules store them (fixed-length strings, object header v2 through
``libver=("v108", "latest")``, so h5coro 1.0.7 fails on them exactly as on real data), beam
attributes, orbit_info and ancillary_data. The values follow a 92 degree inclination orbit at
about 7 km/s with three beam pairs 3.3 km apart and 90 m within a pair; strong beams have short
segments, weak beams about four times longer. Freeboard is a smooth field plus noise, with leads
(low freeboard), cloud segments and about 2 % fill. Every file says ``synthetic`` in its
attributes and is fully determined by its arguments and ``seed``. ``product="ATL07"`` writes the
same tracks as ATL07's ``sea_ice_segments``: heights above the mean sea surface (the freeboard field
plus a sea surface), leads near zero, the same lengths, types and quality flags.

Examples
--------
>>> import tempfile, xarray as xr
>>> path = write_granule(tempfile.mkdtemp(), n_segments=2000, seed=1)
>>> ds = xr.open_dataset(path, engine="atl10")
>>> ds.sizes["segment"] > 0, ds.attrs["hemisphere"]
(True, 'south')
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from is2grid import products
from is2grid.products import icesat2
from is2grid.products.base import decode_attr

__all__ = ["granule_name", "sample_month", "write_granule", "write_month"]

EARTH_RADIUS = 6_371_000.0
INCLINATION = np.deg2rad(92.0)
GROUND_SPEED = 6_900.0  # m/s
PAIR_SPACING = 3_300.0
BEAM_SPACING = 90.0
EARTH_ROTATION = 7.2921159e-5  # rad/s
CHUNK = 10_000
FILL_F4 = np.float32(3.4028235e38)
ICE_LATITUDES = {"south": (-79.0, -55.0), "north": (60.0, 88.0)}
SYNTHETIC_NOTE = "SYNTHETIC granule written by is2grid.tutorial: not ICESat-2 data"


def granule_name(
    hemisphere: str,
    start: str | np.datetime64,
    rgt: int,
    cycle: int,
    region: int | None = None,
    product: str = "ATL10",
) -> str:
    """The NSIDC file name of a granule, e.g. ``ATL10-02_20190915101500_12340402_006_01.h5``.

    Examples
    --------
    >>> granule_name("south", "2019-09-15T10:15:00", rgt=1234, cycle=4)
    'ATL10-02_20190915101500_12340402_006_01.h5'
    >>> granule_name("north", "2019-03-01T10:15:00", rgt=1234, cycle=2, product="ATL07")
    'ATL07-01_20190301101500_12340201_006_01.h5'
    """
    hh = "01" if hemisphere == "north" else "02"
    region = region if region is not None else int(hh)
    stamp = pd.Timestamp(start).strftime("%Y%m%d%H%M%S")
    return f"{products.product(product).name}-{hh}_{stamp}_{rgt:04d}{cycle:02d}{region:02d}_006_01.h5"


def write_granule(
    path: str | os.PathLike,
    *,
    hemisphere: str = "south",
    sc_orient: int = 0,
    start: str | np.datetime64 = "2019-09-15T00:00:00",
    rgt: int = 1234,
    cycle: int = 4,
    n_segments: int = 20_000,
    lan: float | None = None,
    missing_beams: Iterable[str] = (),
    all_fill_beams: Iterable[str] = (),
    day_of_season: float = 0.0,
    seed: int = 0,
    product: str = "ATL10",
) -> Path:
    """Write one synthetic ATL10 (or ATL07) release 006 granule.

    Parameters
    ----------
    path : str or PathLike
        A directory (the NSIDC file name is used) or a full file name.
    hemisphere : {"south", "north"}
    sc_orient : {0, 1, 2}
        Spacecraft orientation: 0 backward (strong beams gt*l), 1 forward (gt*r), 2 transition.
    start : datetime-like
        UTC start of the granule; segment times follow at the ground speed.
    rgt, cycle : int
        Reference ground track and cycle, written to orbit_info and the file name.
    n_segments : int
        Approximate number of segments per strong beam (weak beams get about a quarter).
        About 250 000 gives a full-size 60-120 MB granule.
    lan : float, optional
        Longitude of the track's polar crossing, degrees; derived from ``rgt`` by default.
    missing_beams : iterable of str
        Beams written without their segment group (like spatially subset granules).
    all_fill_beams : iterable of str
        Beams whose every freeboard (ATL07: height) is the fill value (like fast-ice granules).
    day_of_season : float
        Shifts the freeboard field in time, so a month of granules shows growth.
    seed : int
        Random seed; the same arguments give the same file, byte for byte in its values.
    product : {"ATL10", "ATL07"}
        ATL10 freeboard segments (with leads and reference sections), or ATL07 height segments.

    Returns
    -------
    pathlib.Path
        The file written.
    """
    import h5py

    if hemisphere not in ICE_LATITUDES:
        raise ValueError(f"hemisphere={hemisphere!r}: use 'south' or 'north'.")
    if sc_orient not in icesat2.ORIENTATIONS:
        raise ValueError(f"sc_orient={sc_orient!r}: use 0 (backward), 1 (forward) or 2 (transition).")
    if n_segments < 1:
        raise ValueError(f"n_segments={n_segments!r}: must be a positive number of segments per strong beam.")
    prod = products.product(product)
    path = Path(path)
    if path.is_dir():
        path = path / granule_name(hemisphere, start, rgt, cycle, product=prod.name)
    rng = np.random.default_rng([seed, rgt, cycle])
    lan = float(lan) if lan is not None else (rgt * 360.0 / 1387.0 * 7.0) % 360.0 - 180.0
    t0 = float(icesat2.seconds_since_epoch(np.datetime64(pd.Timestamp(start).to_datetime64(), "ns")))
    strong = set(icesat2.STRONG_BEAMS.get(sc_orient, ("gt1l", "gt2l", "gt3l")))
    missing, all_fill = set(missing_beams), set(all_fill_beams)

    tmp = path.with_name(path.name + ".part")
    with h5py.File(tmp, "w", libver=("v108", "latest")) as f:
        _write_root_attrs(prod, f, hemisphere, start, rgt, cycle)
        _write_small_groups(prod, f, sc_orient, rgt, cycle, t0, lan, start, hemisphere)
        for beam in icesat2.BEAMS:
            is_strong = beam in strong
            group = f.create_group(beam)
            _write_group_attrs(prod, group, "{beam}", beam=beam, sc_orient=sc_orient)
            track = _beam_track(beam, hemisphere, lan, t0, n_segments, is_strong, rng)
            if prod.name == "ATL07":
                if beam not in missing:
                    _write_heights(prod, group, track, rng, all_fill=beam in all_fill, day=day_of_season,
                                   hemisphere=hemisphere)  # fmt: skip
                continue
            if beam not in missing:
                _write_segments(prod, group, track, rng, all_fill=beam in all_fill, day=day_of_season,
                                hemisphere=hemisphere)  # fmt: skip
            _write_leads(prod, group, track, rng)
            _write_sections(prod, group, track, rng)
    os.replace(tmp, path)
    return path


def write_month(
    directory: str | os.PathLike,
    *,
    year: int = 2019,
    month: int = 9,
    hemisphere: str = "south",
    granules_per_day: int = 1,
    n_segments: int = 20_000,
    seed: int = 0,
    progress: bool = False,
    workers: int | None = None,
    product: str = "ATL10",
) -> list[Path]:
    """Write a month of synthetic granules (``granules_per_day`` each day, tracks spread in longitude).

    Granules already in ``directory`` are kept; the others are written in parallel processes.
    Returns the paths in time order.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    days = pd.date_range(f"{year}-{month:02d}-01", periods=pd.Period(f"{year}-{month:02d}").days_in_month, freq="D")
    jobs = []
    for d, day in enumerate(days):
        for k in range(granules_per_day):
            start = day + pd.Timedelta(hours=24 * k / granules_per_day + 1.5)
            rgt = (d * 14 + k * 7) % 1387 + 1
            jobs.append((start, rgt, (d * granules_per_day + k) % 2, float(d)))
    todo = [
        (directory / granule_name(hemisphere, start, rgt, cycle=4, product=product), start, rgt, orient, day)
        for start, rgt, orient, day in jobs
    ]
    missing = [job for job in todo if not job[0].exists()]
    options = {"hemisphere": hemisphere, "cycle": 4, "n_segments": n_segments, "seed": seed, "product": product}
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(todo), initial=len(todo) - len(missing), desc="synthetic granules", unit="granule")
    with ProcessPoolExecutor(max_workers=max(1, min(workers or os.cpu_count() or 1, len(missing) or 1))) as pool:
        futures = [
            pool.submit(_write_one, name, start, rgt, orient, day, options) for name, start, rgt, orient, day in missing
        ]
        for future in as_completed(futures):
            future.result()
            if bar is not None:
                bar.update()
    if bar is not None:
        bar.close()
    paths = [job[0] for job in todo]
    return paths


def _write_one(name, start, rgt, orient, day, options):
    return write_granule(name, start=start, rgt=rgt, sc_orient=orient, lan=((rgt * 37.3) % 360.0) - 180.0,
                         day_of_season=day, **options)  # fmt: skip


def sample_month(cache_dir: str | os.PathLike | None = None, progress: bool = False, **kwargs) -> list[Path]:
    """The bundled sample: a month of reduced-size Antarctic granules, cached in the user cache directory.

    About 30 granules and 130 MB, written in about 30 s on two cores the first time.
    """
    import platformdirs

    root = Path(cache_dir) if cache_dir is not None else Path(platformdirs.user_cache_dir("is2grid"))
    options: dict[str, Any] = {
        "year": 2019, "month": 9, "hemisphere": "south", "granules_per_day": 1, "n_segments": 6_000
    }  # fmt: skip
    options.update(kwargs)
    product = str(options.pop("product", "ATL10"))
    tag = "-".join(f"{k}{v}" for k, v in sorted(options.items()))
    return write_month(root / f"synthetic-{product.lower()}-{tag}", progress=progress, product=product, **options)


# --- geometry -------------------------------------------------------------------------------


def _unit(lat, lon):
    lat, lon = np.deg2rad(lat), np.deg2rad(lon)
    return np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], axis=-1)


def _latlon(v):
    v = v / np.linalg.norm(v, axis=-1, keepdims=True)
    return np.rad2deg(np.arcsin(np.clip(v[..., 2], -1, 1))), np.rad2deg(np.arctan2(v[..., 1], v[..., 0]))


def _cross_offset(beam: str) -> float:
    pair = int(beam[2]) - 2
    side = -0.5 if beam[3] == "l" else 0.5
    return pair * PAIR_SPACING + side * BEAM_SPACING


def _beam_track(beam, hemisphere, lan, t0, n_strong, strong, rng):
    """Segment centres of one beam over sea inside the ice zone: along-track distance, lat, lon, time, length."""
    mean_len = 15.0 if strong else 60.0
    n_target = n_strong if strong else max(1, n_strong // 4)
    lo, hi = ICE_LATITUDES[hemisphere]
    # arc of the orbit (argument of latitude u) through the ice zone, around the polar turn
    u_pole = 1.5 * np.pi if hemisphere == "south" else 0.5 * np.pi
    span = np.deg2rad(90.0 - min(abs(lo), abs(hi)))  # from the ice edge latitude to the turn
    arc = 2 * (span + np.deg2rad(2.0)) * EARTH_RADIUS
    lengths = rng.gamma(3.0, mean_len / 3.0, size=int(arc / mean_len) + 10).clip(5.0, 560.0)
    s = np.cumsum(lengths) - lengths / 2
    u = u_pole - arc / (2 * EARTH_RADIUS) + s / EARTH_RADIUS
    lat_c = np.rad2deg(np.arcsin(np.sin(INCLINATION) * np.sin(u)))
    candidates = np.flatnonzero((s < arc) & (lat_c > lo - 0.1) & (lat_c < hi + 0.1))
    # reduced sizes sample the whole track sparsely rather than a short stretch of it
    wanted = n_target
    for _ in range(3):
        step = max(1, int(np.ceil(len(candidates) / wanted)))
        idx = candidates[::step]
        lat, lon, keep = _beam_geometry(beam, u[idx], t0 + s[idx] / GROUND_SPEED, lan, t0, lo, hi)
        kept = int(keep.sum())
        if step == 1 or kept >= 0.97 * n_target or kept == 0:
            break
        wanted = int(wanted * n_target / kept) + 1
    idx, lat, lon = idx[keep], lat[keep], lon[keep]
    return {
        "seg_dist_x": 10_000_000.0 + s[idx],
        "latitude": lat,
        "longitude": lon,
        "delta_time": t0 + s[idx] / GROUND_SPEED,
        "length": lengths[idx].astype(np.float32),
    }


def _beam_geometry(beam, u, t, lan, t0, lo, hi):
    """Beam footprints: the orbit's ground track offset across track, and which lie over sea in the ice zone."""

    def centre(u):
        lat = np.rad2deg(np.arcsin(np.sin(INCLINATION) * np.sin(u)))
        lon = (
            lan
            + np.rad2deg(np.arctan2(np.cos(INCLINATION) * np.sin(u), np.cos(u)))
            - np.rad2deg(EARTH_ROTATION * (t - t0))
        )
        return _unit(lat, lon)

    p = centre(u)
    normal = np.cross(p, centre(u + 1e-4) - p)
    normal /= np.linalg.norm(normal, axis=-1, keepdims=True)
    lat, lon = _latlon(p + normal * (_cross_offset(beam) / EARTH_RADIUS))
    keep = (lat > lo) & (lat < hi)
    keep[keep] = ~_over_land(lat[keep], lon[keep])
    return lat, lon, keep


def _polar_xy(lat, lon):
    colat = 90.0 - np.abs(lat)
    return np.column_stack([colat * np.cos(np.deg2rad(lon)), colat * np.sin(np.deg2rad(lon))])


def _over_land(lat, lon) -> np.ndarray:
    """True where a point lies on land (Natural Earth 1:110m), so that segments stay over the sea."""
    import shapely

    from is2grid.viz.coastlines import land_rings

    land = np.zeros(lat.shape, dtype=bool)
    if not lat.size:
        return land
    xy = _polar_xy(lat, lon)
    hemisphere = np.sign(lat.mean())
    for ring in land_rings():
        if np.sign(ring[:, 1].mean()) != hemisphere:
            continue
        outline = _polar_xy(ring[:, 1], ring[:, 0])
        (x0, y0), (x1, y1) = outline.min(axis=0), outline.max(axis=0)
        near = np.flatnonzero((xy[:, 0] >= x0) & (xy[:, 0] <= x1) & (xy[:, 1] >= y0) & (xy[:, 1] <= y1))
        if near.size:
            land[near] |= shapely.contains_xy(shapely.Polygon(outline), xy[near, 0], xy[near, 1])
    return land


def _freeboard_field(lat, lon, day, hemisphere):
    """A smooth freeboard field in metres: thicker towards the coast, slow waves, growth in time."""
    colat = 90.0 - np.abs(lat)
    x = colat * np.cos(np.deg2rad(lon))
    y = colat * np.sin(np.deg2rad(lon))
    base = 0.45 if hemisphere == "north" else 0.3
    waves = 0.12 * np.sin(x / 4.0) * np.cos(y / 5.0) + 0.05 * np.cos((x + y) / 2.5)
    return base + waves + 0.004 * day - 0.01 * (colat - 20.0).clip(0)


# --- writers ----------------------------------------------------------------------------------


def _attr_value(value):
    if isinstance(value, str):
        return np.bytes_(value.encode())
    return value


def _set_attrs(obj, attrs: dict) -> None:
    for key, value in attrs.items():
        obj.attrs[key] = _attr_value(value)


def _write_group_attrs(prod, group, schema_path, *, beam=None, sc_orient=None):
    attrs = prod.group_attrs(schema_path) if beam is None else prod.beam_attrs(beam, sc_orient)
    _set_attrs(group, attrs)


def _write_root_attrs(prod, f, hemisphere, start, rgt, cycle):
    attrs = prod.root_attrs()
    attrs.update(
        title=f"SYNTHETIC {prod.name} ({hemisphere}) - {SYNTHETIC_NOTE}",
        comment=SYNTHETIC_NOTE,
        is2grid_synthetic="true",
        time_coverage_start=pd.Timestamp(start).strftime("%Y-%m-%dT%H:%M:%S.000000Z"),
        granule_type=prod.name,
        short_name=prod.name,
        history=f"{SYNTHETIC_NOTE}; rgt {rgt} cycle {cycle}",
        identifier_file_uuid="00000000-0000-0000-0000-000000000000",
        **{"Processing Parameters": SYNTHETIC_NOTE},
    )
    _set_attrs(f, attrs)


def _create(prod, group, name, data, schema_path):
    entry = prod.schema_entry(schema_path)
    dtype = np.dtype(entry["dtype"]) if entry else np.asarray(data).dtype
    data = np.asarray(data).astype(dtype, copy=False)
    kwargs = {}
    if entry and entry["chunks"]:
        kwargs["chunks"] = tuple(entry["chunks"])
        kwargs["maxshape"] = tuple(None if m == -1 else m for m in entry["maxshape"])
        if entry["shuffle"]:
            kwargs["shuffle"] = True
        if entry["deflate"] is not None:
            kwargs.update(compression="gzip", compression_opts=entry["deflate"])
    fill = entry["attrs"].get("_FillValue") if entry else None
    if fill is not None:
        kwargs["fillvalue"] = decode_attr(fill)
    dset = group.create_dataset(name, data=data, **kwargs)
    attrs = prod.variable_attrs(schema_path) if entry else {}
    if dset.ndim and name not in ("latitude", "longitude", "delta_time") and entry and entry["chunks"] == [CHUNK]:
        attrs["coordinates"] = "delta_time latitude longitude"
    _set_attrs(dset, attrs)
    return dset


def _write_small_groups(prod, f, sc_orient, rgt, cycle, t0, lan, start, hemisphere):
    stamp = pd.Timestamp(start).strftime("%Y-%m-%dT%H:%M:%S.000000Z")
    known = {
        "orbit_info/sc_orient": [sc_orient],
        "orbit_info/rgt": [rgt],
        "orbit_info/cycle_number": [cycle],
        "orbit_info/orbit_number": [(cycle - 1) * 1387 + rgt],
        "orbit_info/lan": [lan],
        "orbit_info/crossing_time": [t0 + 2000.0],
        "orbit_info/sc_orient_time": [t0 - 86400.0 * 10],
        "ancillary_data/atlas_sdp_gps_epoch": [1198800018.0],
        "ancillary_data/release": [b"006"],
        "ancillary_data/version": [b"01"],
        "ancillary_data/data_start_utc": [stamp.encode()],
        "ancillary_data/granule_start_utc": [stamp.encode()],
        "ancillary_data/start_delta_time": [t0],
        "ancillary_data/end_delta_time": [t0 + 5658.0],
        "ancillary_data/start_rgt": [rgt],
        "ancillary_data/start_region": [1 if hemisphere == "north" else 2],
        "ancillary_data/end_region": [1 if hemisphere == "north" else 2],
        "ancillary_data/end_rgt": [rgt],
        "ancillary_data/start_cycle": [cycle],
        "ancillary_data/end_cycle": [cycle],
        "ancillary_data/control": [SYNTHETIC_NOTE.encode()],
    }
    for schema_path in prod.dataset_paths():
        if schema_path.startswith("{beam}"):
            continue
        group_path, name = schema_path.rsplit("/", 1)
        group = f.require_group(group_path)
        if not group.attrs:
            _write_group_attrs(prod, group, group_path)
        entry = prod.schema_entry(schema_path)
        shape = (1, *entry["trailing_shape"])
        data = known.get(schema_path, np.zeros(shape, dtype=entry["dtype"]))
        _create(prod, group, name, data, schema_path)


def _write_segments(prod, group, track, rng, *, all_fill, day, hemisphere):
    n = len(track["latitude"])
    top_path = "{beam}/" + prod.segment_group
    fs = group.create_group(prod.segment_group)
    _write_group_attrs(prod, fs, top_path)
    heights = fs.create_group("heights")
    _write_group_attrs(prod, heights, top_path + "/heights")
    geo = fs.create_group("geophysical")
    _write_group_attrs(prod, geo, top_path + "/geophysical")

    lat, lon, dt = track["latitude"], track["longitude"], track["delta_time"]
    kind = rng.random(n)
    seg_type = np.ones(n, dtype=np.int8)
    is_lead = kind < 0.06
    seg_type[is_lead] = rng.integers(2, 10, size=int(is_lead.sum()))
    is_cloud = (kind >= 0.06) & (kind < 0.08)
    seg_type[is_cloud] = 0
    fb = _freeboard_field(lat, lon, day, hemisphere) + rng.normal(0.0, 0.08, n)
    fb = np.where(is_lead, np.abs(rng.normal(0.0, 0.02, n)), fb).clip(0.0).astype(np.float32)
    unc = (0.02 + 0.01 * rng.random(n)).astype(np.float32)
    quality = rng.integers(1, 6, size=n).astype(np.int8)
    is_fill = (rng.random(n) < 0.02) | all_fill
    fb[is_fill] = FILL_F4
    unc[is_fill] = FILL_F4
    quality[is_fill] = 1  # real granules: fill freeboards carry flag 1, the fill value is the mask
    confidence = (0.01 + 0.14 * rng.random(n)).astype(np.float32)
    ssh = rng.normal(0.0, 0.05, n).astype(np.float32)
    first_id = int(rng.integers(100_000, 300_000))
    geoseg = 500_000 + (track["seg_dist_x"] - 10_000_000.0) // 20.0

    top = {
        "beam_fb_height": fb,
        "beam_fb_unc": unc,
        "beam_fb_quality_flag": quality,
        "beam_fb_confidence": confidence,
        "beam_refsurf_ndx": 1 + ((track["seg_dist_x"] - track["seg_dist_x"][:1].min(initial=0)) // 10_000),
        "delta_time": dt,
        "geoseg_beg": geoseg,
        "geoseg_end": geoseg + (track["length"] // 20.0),
        "height_segment_id": first_id + np.arange(n),
        "latitude": lat,
        "longitude": lon,
        "seg_dist_x": track["seg_dist_x"],
    }
    sub = {
        "height_segment_length_seg": track["length"],
        "height_segment_type": seg_type,
        "height_segment_ssh_flag": np.where(is_lead, 1, 0),
        "height_segment_height": np.where(is_fill, FILL_F4, fb + ssh),
        "height_segment_confidence": confidence,
        "height_segment_sigma": unc,
        "ice_conc_amsr2": (85.0 + 15.0 * rng.random(n)),
        "ice_conc_ssmi": (80.0 + 20.0 * rng.random(n)),
        "layer_flag": np.where(is_cloud, 1, 0),
        "latitude": lat,
        "longitude": lon,
        "delta_time": dt,
    }
    _write_rows(prod, fs, top_path, top, n, rng)
    _write_rows(prod, heights, top_path + "/heights", sub, n, rng)
    _write_rows(prod, geo, top_path + "/geophysical", {"latitude": lat, "longitude": lon, "delta_time": dt}, n, rng)


def _write_heights(prod, group, track, rng, *, all_fill, day, hemisphere):
    """ATL07's ``sea_ice_segments``: surface heights above the mean sea surface, leads near it."""
    n = len(track["latitude"])
    seg = group.create_group(prod.segment_group)
    _write_group_attrs(prod, seg, "{beam}/" + prod.segment_group)
    subgroups = {}
    for sub in prod.segment_subgroups:
        subgroups[sub] = seg.create_group(sub)
        _write_group_attrs(prod, subgroups[sub], f"{{beam}}/{prod.segment_group}/{sub}")
    lat, lon, dt = track["latitude"], track["longitude"], track["delta_time"]
    kind = rng.random(n)
    seg_type = np.ones(n, dtype=np.int8)
    is_lead = kind < 0.06
    seg_type[is_lead] = rng.integers(2, 10, size=int(is_lead.sum()))
    seg_type[(kind >= 0.06) & (kind < 0.08)] = 0
    height = _freeboard_field(lat, lon, day, hemisphere) + rng.normal(0.0, 0.1, n)
    height = np.where(is_lead, rng.normal(0.0, 0.03, n), height).astype(np.float32)
    is_fill = (rng.random(n) < 0.02) | all_fill
    height[is_fill] = FILL_F4
    fit_quality = rng.integers(1, 6, size=n).astype(np.int8)
    fit_quality[is_fill] = -1
    first_id = int(rng.integers(100_000, 300_000))
    geoseg = 500_000 + (track["seg_dist_x"] - 10_000_000.0) // 20.0
    top = {
        "delta_time": dt,
        "latitude": lat,
        "longitude": lon,
        "seg_dist_x": track["seg_dist_x"],
        "height_segment_id": first_id + np.arange(n),
        "geoseg_beg": geoseg,
        "geoseg_end": geoseg + (track["length"] // 20.0),
    }
    heights = {
        "height_segment_height": height,
        "height_segment_length_seg": track["length"],
        "height_segment_type": seg_type,
        "height_segment_ssh_flag": np.where(is_lead, 1, 0),
        "height_segment_quality": np.where(is_fill, 0, 1),
        "height_segment_fit_quality_flag": fit_quality,
        "height_segment_confidence": (0.01 + 0.14 * rng.random(n)).astype(np.float32),
        "height_segment_rms": (0.02 + 0.1 * rng.random(n)).astype(np.float32),
    }
    bins = prod.schema_entry(f"{{beam}}/{prod.segment_group}/stats/hist_photon_heights")
    n_bins = bins["trailing_shape"][0] if bins else 221
    stats = {
        "ds_si_hist_bins": np.arange(n_bins, dtype=np.int32),
        "hist_photon_heights": np.zeros((n, n_bins), dtype=np.int16),
    }
    _write_rows(prod, seg, "{beam}/" + prod.segment_group, top, n, rng)
    for sub, given in (("heights", heights), ("stats", stats), ("geophysical", {}), ("geolocation", {})):
        _write_rows(prod, subgroups[sub], f"{{beam}}/{prod.segment_group}/{sub}", given, n, rng)


def _plausible(entry, n, rng):
    """Values for a dataset is2grid has no special model for: flags from their flag_values, small floats."""
    dtype = np.dtype(entry["dtype"])
    attrs = entry["attrs"]
    if "flag_values" in attrs:
        values = np.asarray(attrs["flag_values"]["values"], dtype=dtype)
        return rng.choice(values[values >= 0] if (values >= 0).any() else values, size=n)
    if dtype.kind == "f":
        # slowly varying and quantised, so it compresses like real geophysical fields
        walk = np.cumsum(rng.normal(0.0, 0.001, n)) + rng.normal(0.0, 0.1)
        return np.round(walk, 3).astype(dtype)
    return np.sort(rng.integers(0, 5, size=n)).astype(dtype)


def _write_rows(prod, group, prefix, given, n, rng):
    for schema_path in prod.dataset_paths():
        if not schema_path.startswith(prefix + "/") or "/" in schema_path[len(prefix) + 1 :]:
            continue
        name = schema_path.rsplit("/", 1)[-1]
        entry = prod.schema_entry(schema_path)
        data = given.get(name)
        if data is None:
            data = _plausible(entry, n, rng)
        _create(prod, group, name, data, schema_path)


def _write_leads(prod, group, track, rng):
    n_all = len(track["latitude"])
    idx = np.sort(rng.choice(n_all, size=min(n_all, max(1, n_all // 50)), replace=False)) if n_all else np.arange(0)
    leads = group.create_group("leads")
    _write_group_attrs(prod, leads, "{beam}/leads")
    given = {
        "latitude": track["latitude"][idx],
        "longitude": track["longitude"][idx],
        "delta_time": track["delta_time"][idx],
        "lead_dist_x": track["seg_dist_x"][idx],
        "lead_height": rng.normal(0.0, 0.05, len(idx)),
        "lead_length": track["length"][idx] * 3,
        "lead_sigma": 0.01 + 0.01 * rng.random(len(idx)),
        "ssh_n": rng.integers(1, 6, size=len(idx)),
        "ssh_ndx": np.arange(1, len(idx) + 1),
    }
    _write_rows(prod, leads, "{beam}/leads", given, len(idx), rng)


def _write_sections(prod, group, track, rng):
    x = track["seg_dist_x"]
    edges = np.arange(x.min(), x.max() + 10_000.0, 10_000.0) if len(x) else np.arange(0)
    centre = np.searchsorted(x, edges[:-1] + 5_000.0).clip(0, max(len(x) - 1, 0)) if len(x) else np.arange(0)
    n = len(centre)
    sections = group.create_group("reference_surface_section")
    _write_group_attrs(prod, sections, "{beam}/reference_surface_section")
    prefix = "{beam}/reference_surface_section"
    for schema_path in prod.dataset_paths():
        if not schema_path.startswith(prefix + "/"):
            continue
        name = schema_path.rsplit("/", 1)[-1]
        entry = prod.schema_entry(schema_path)
        if name == "ds_si_hist_bins":
            data = np.arange(161, dtype=np.int32)
        elif name == "beam_fb_hist_refsurf":
            # a freeboard histogram per section: a bump around the section's mode, zeros elsewhere
            mode = rng.integers(20, 60, size=(n, 1))
            data = np.round(40 * np.exp(-0.5 * ((np.arange(161) - mode) / 6.0) ** 2)).astype(np.int16)
        elif name in ("latitude", "longitude", "delta_time"):
            data = track[name][centre]
        elif name == "beam_refsurf_dist_x":
            data = x[centre]
        elif name == "fbswath_ndx":
            data = np.arange(1, n + 1)
        else:
            data = _plausible(entry, n, rng)
        _create(prod, sections, name, data, schema_path)
