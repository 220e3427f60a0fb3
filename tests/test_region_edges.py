"""Regions at the edges: the antimeridian in every spelling, rings around a pole, and regions that cannot be right."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import is2grid
from is2grid.grid import regions, timeseries

from .helpers import segments

SECTOR = (170.0, -80.0, -170.0, -60.0)  # 20 degrees across 180


def in_sector(lon, lat):
    """The reference: plain arithmetic on longitudes in -180..180, no geometry library."""
    lon = (np.asarray(lon) + 180) % 360 - 180
    return (lat >= -80) & (lat <= -60) & ((lon >= 170) | (lon <= -170))


SPELLINGS = {
    "box lon_min > lon_max": SECTOR,
    "box past 180": (170, -80, 190, -60),
    "polygon 170 -> -170": {
        "type": "Polygon",
        "coordinates": [[[170, -80], [-170, -80], [-170, -60], [170, -60], [170, -80]]],
    },
    "polygon 170 -> 190": {
        "type": "Polygon",
        "coordinates": [[[170, -80], [190, -80], [190, -60], [170, -60], [170, -80]]],
    },
    "polygon -190 -> -170": {
        "type": "Polygon",
        "coordinates": [[[-190, -80], [-170, -80], [-170, -60], [-190, -60], [-190, -80]]],
    },
}


@pytest.mark.parametrize("spelling", SPELLINGS)
@settings(max_examples=300, deadline=None)
@given(lon=st.floats(-360, 360), lat=st.floats(-85, -55))
def test_every_spelling_of_a_sector_across_the_antimeridian_is_the_same_sector(spelling, lon, lat):
    area = regions.region(SPELLINGS[spelling])
    got = bool(area.contains(np.array([lon]), np.array([lat]))[0])
    on_edge = min(abs(abs((lon + 180) % 360 - 180) - 170), abs(lat + 80), abs(lat + 60)) < 1e-9
    assert got == bool(in_sector(lon, lat)) or on_edge
    assert area.bbox == SECTOR and area.hemisphere == "south"


@pytest.fixture(scope="module")
def ross_grid():
    """Segments spread over the whole Southern Ocean, gridded at 25 km."""
    rng = np.random.default_rng(5)
    lat, lon = rng.uniform(-80, -55, 200_000), rng.uniform(-180, 180, 200_000)
    return segments(lat, lon).is2grid.to_ease2(res=25000, freq=None)


def test_a_time_series_across_the_antimeridian_counts_its_two_halves(ross_grid):
    east, west = (
        timeseries.region_timeseries(ross_grid, box) for box in ((170, -80, 180, -60), (-180, -80, -170, -60))
    )
    expected = int(east.n_segments) + int(west.n_segments)
    assert expected > 0
    for spelling, spec in SPELLINGS.items():
        assert int(timeseries.region_timeseries(ross_grid, spec).n_segments) == expected, spelling
    everything = int(ross_grid.n_segments.sum())
    assert expected < everything / 4, "not the other 340 degrees of the globe"


def test_a_ring_around_the_pole_holds_the_pole():
    ring = {"type": "Polygon", "coordinates": [[[0, -70], [90, -70], [180, -70], [-90, -70], [0, -70]]]}
    area = regions.region(ring)
    lon = np.array([45.0, -135.0, 0.0, 170.0, 45.0])
    lat = np.array([-80.0, -89.9, -90.0, -71.0, -60.0])
    assert area.contains(lon, lat).tolist() == [True, True, True, True, False]
    assert area.bbox == (-180.0, -90.0, 180.0, -70.0)
    north = regions.region({"type": "Polygon", "coordinates": [[[0, 80], [120, 80], [-120, 80], [0, 80]]]})
    assert north.contains(np.array([60.0, 60.0]), np.array([85.0, 75.0])).tolist() == [True, False]


def test_a_region_of_the_other_hemisphere_is_an_error_not_a_series_of_zeros(ross_grid):
    """The corners of EASE-Grid 2.0 South reach 84 N: an Arctic region holds cells of it, all empty."""
    with pytest.raises(is2grid.GridError, match=r"'beaufort' .* northern hemisphere, but .* southern grid"):
        timeseries.region_timeseries(ross_grid, "beaufort")
    with pytest.raises(is2grid.GridError, match="northern hemisphere"):
        ross_grid.is2grid.timeseries((-160, 70, -130, 80))


def test_swapped_coordinates_and_invalid_polygons_are_named():
    swapped = {"type": "Polygon", "coordinates": [[[-80, 170], [-80, -170], [-60, -170], [-60, 170], [-80, 170]]]}
    with pytest.raises(is2grid.GridError, match=r"latitudes .* outside -90..90 .* \(lat, lon\)"):
        regions.region(swapped)
    with pytest.raises(is2grid.GridError, match=r"looks like \(lat, lon"):
        regions.region((-80, 170, -60, -170))
    bowtie = {"type": "Polygon", "coordinates": [[[0, -80], [10, -60], [10, -80], [0, -60], [0, -80]]]}
    with pytest.raises(is2grid.GridError, match=r"not valid \(Self-intersection"):
        regions.region(bowtie)
    with pytest.raises(is2grid.GridError, match="has no area"):
        regions.region({"type": "LineString", "coordinates": [[0, -80], [10, -60]]})


def test_a_region_without_any_segment_warns(ross_grid):
    with pytest.warns(is2grid.Is2gridWarning, match="holds no segment in any time bin"):
        series = timeseries.region_timeseries(ross_grid, (0, -89, 10, -85))  # south of every segment
    assert int(series.n_segments) == 0
