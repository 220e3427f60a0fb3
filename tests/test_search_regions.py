"""Named regions and the earthaccess search (against a recorded-format CMR response, never the network)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import is2grid
from is2grid import cli, earthdata
from is2grid.grid import regions

DATA = Path(__file__).parent / "data"


# -- regions ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "lon", "lat"),
    [
        ("ross", 180.0, -76.0),
        ("ross", -150.0, -75.0),
        ("weddell", -40.0, -70.0),
        ("weddell", 10.0, -68.0),
        ("bellingshausen_amundsen", -100.0, -72.0),
        ("indian", 60.0, -65.0),
        ("western_pacific", 120.0, -65.0),
        ("beaufort", -140.0, 73.0),
        ("chukchi", -170.0, 70.0),
        ("chukchi", 178.0, 70.0),
        ("central_arctic", 0.0, 88.0),
        ("laptev", 125.0, 76.0),
        ("bering", 180.0, 60.0),
        ("okhotsk", 148.0, 55.0),
    ],
)
def test_named_regions_hold_their_seas(name, lon, lat):
    area = regions.region(name)
    assert area.contains(np.array([lon]), np.array([lat]))[0]
    others = [r for r in regions.REGIONS.values() if r.hemisphere == area.hemisphere and r.name != name]
    overlapping = [r.name for r in others if r.contains(np.array([lon]), np.array([lat]))[0]]
    assert set(overlapping) <= {"southern_ocean"}, overlapping


def test_antarctic_sectors_tile_the_southern_ocean_and_every_region_has_a_source():
    lon = np.linspace(-180, 180, 3601)
    lat = np.full(lon.shape, -70.0)
    sectors = ["weddell", "indian", "western_pacific", "ross", "bellingshausen_amundsen"]
    hits = sum(regions.REGIONS[s].contains(lon, lat).astype(int) for s in sectors)
    edges = np.isin(lon, [-130, -60, 20, 90, 160])
    assert (hits[~edges] == 1).all() and (hits >= 1).all()
    for area in regions.REGIONS.values():
        assert area.hemisphere in ("north", "south") and ("doi:" in area.source), area.name


def test_user_regions_box_polygon_geojson_and_errors(tmp_path):
    import shapely

    polygon = {"type": "Polygon", "coordinates": [[[160, -80], [-170 + 360, -80], [190, -70], [160, -70], [160, -80]]]}
    area = regions.region(polygon)
    assert area.contains(np.array([170.0, 100.0]), np.array([-75.0, -75.0])).tolist() == [True, False]
    feature = {"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": polygon, "properties": {}}]}
    path = tmp_path / "area.geojson"
    path.write_text(json.dumps(feature))
    assert regions.region(path).bbox == area.bbox
    assert regions.region(shapely.box(0, -70, 10, -60)).hemisphere == "south"
    assert regions.region((170, -80, -170, -70)).contains(np.array([-175.0]), np.array([-75.0]))[0]
    assert regions.region("Ross Sea".replace(" Sea", "")) is regions.REGIONS["ross"]
    with pytest.raises(is2grid.GridError, match="Named regions: weddell"):
        regions.region("atlantis")
    with pytest.raises(is2grid.GridError, match="lon_min, lat_min"):
        regions.region((0, -60, 10, -70))


# -- search ----------------------------------------------------------------------------------------------


def recorded_results(names):
    """earthaccess DataGranule objects as CMR returns them (the UMM-G record format of tests/data)."""
    import earthaccess

    record = json.loads((DATA / "earthaccess_granule.json").read_text())
    out = []
    for name in names:
        item = copy.deepcopy(record)
        item["meta"]["native-id"] = item["umm"]["GranuleUR"] = name
        text = json.dumps(item).replace("ATL10-02_20190915000000_12340402_006_01.h5", name)
        out.append(earthaccess.results.DataGranule(json.loads(text), cloud_hosted=True))
    return out


@pytest.fixture
def cmr(monkeypatch):
    import earthaccess

    calls = []
    names = [
        "ATL10-02_20190903120000_10200402_006_01.h5",
        "ATL10-01_20190902120000_10100401_006_01.h5",  # Arctic: left out for a southern region
        "ATL10-02_20190901120000_10000402_006_01.h5",
    ]

    def search_data(**query):
        calls.append(query)
        return recorded_results(names)

    monkeypatch.setattr(earthaccess, "search_data", search_data)
    return calls


def test_search_sends_the_region_and_period_and_keeps_one_hemisphere(cmr):
    found = is2grid.search("ross", "2019-09")
    assert [g["meta"]["native-id"][:23] for g in found] == ["ATL10-02_20190901120000", "ATL10-02_20190903120000"]
    (query,) = cmr
    assert query["short_name"] == "ATL10" and query["version"] == "006"
    assert query["bounding_box"] == (160.0, -90.0, -130.0, -50.0)
    assert pd.Timestamp(query["temporal"][0]) == pd.Timestamp("2019-09-01")
    assert pd.Timestamp(query["temporal"][1]).date().isoformat() == "2019-09-30"
    north = is2grid.search(time=("2019-09-01", "2019-09-05"), hemisphere="north")
    assert [g["meta"]["native-id"][:8] for g in north] == ["ATL10-01"] and "bounding_box" not in cmr[-1]


def test_search_errors_are_named(cmr):
    with pytest.raises(is2grid.GridError, match="time="):
        is2grid.search("ross")
    with pytest.raises(is2grid.GridError, match="a month"):
        is2grid.search("ross", "September")
    with pytest.raises(is2grid.GridError, match="southern hemisphere, not the northern"):
        is2grid.search("ross", "2019-09", hemisphere="north")
    assert not cmr, "nothing was sent for bad arguments"


def test_search_results_grid_through_their_https_links(cmr, south, tmp_path, monkeypatch):
    """The search results go straight into grid_granules, which picks each granule's HTTPS link here."""
    from tests.servers import serve_http

    name = "ATL10-02_20190915000000_12340402_006_01.h5"
    (tmp_path / name).write_bytes(Path(south).read_bytes())
    server, base = serve_http(tmp_path)
    try:
        records = recorded_results([name])
        for link in records[0]["umm"]["RelatedUrls"]:
            link["URL"] = link["URL"].replace("{https}", base)
        monkeypatch.setattr(earthdata, "search", lambda *a, **k: records)
        out = tmp_path / "amundsen.zarr"
        code = cli.main(
            [
                "grid",
                "--search",
                "--region",
                "bellingshausen_amundsen",
                "--time",
                "2019-09",
                "--out",
                str(out),
                "--res",
                "25000",
            ]
        )
        assert code == 0
        import xarray as xr

        result = xr.open_zarr(out)
        box = regions.REGIONS["bellingshausen_amundsen"].bbox
        direct = is2grid.workflow.grid_granules(
            [south], res=25000, progress=False, bbox=box, time_range=earthdata.time_span("2019-09")
        )
        assert result.sizes["time"] == 30 and int(result.n_segments.sum()) == int(direct.n_segments.sum()) > 0
        assert result.attrs["granule_first"] == name
    finally:
        server.shutdown()


def test_cli_grid_flags_for_every_option(south, tmp_path):
    out = tmp_path / "a.nc"
    code = cli.main([
        "grid", str(south), "--out", str(out), "--res", "25000",
        "--bbox-xy", "-4000000", "-4000000", "4000000", "4000000",
        "--fb-range", "0", "2", "--min-segments", "2", "--time-range", "2019-09-15", "2019-09-16",
        "--segment-types", "1", "--max-quality", "4", "--freq", "1D",
    ])  # fmt: skip
    assert code == 0
    import xarray as xr

    with xr.open_dataset(out) as ds:
        assert ds.sizes == {"time": 2, "y": 321, "x": 321, "nv": 2, "n_granules": 1} and int(ds.n_segments.sum()) > 0
        assert float(ds.mean_fb.min()) >= 0 and float(ds.mean_fb.max()) <= 2
        assert ds.mean_fb.dtype == np.float32 and "0.0 <= beam_fb_height <= 2.0" in ds.attrs["filters"]
    assert cli.main(["grid", str(south), "--out", str(tmp_path / "f.nc"), "--res", "100000", "--full-grid"]) == 0


@pytest.fixture
def no_network(monkeypatch):
    """Every HTTP(S) request goes to a proxy on a closed loopback port: refused at once, as on a node offline."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"):
        monkeypatch.setenv(name, f"http://127.0.0.1:{port}")
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)


def test_search_without_a_network_is_a_named_error(no_network, tmp_path, capsys):
    """It printed requests' 78-line ConnectionError traceback."""
    with pytest.raises(is2grid.RemoteReadError, match=r"searching NASA's CMR \(cmr.earthdata.nasa.gov\).*network"):
        is2grid.search("ross", "2019-09")
    code = cli.main(["grid", "--search", "--region", "ross", "--time", "2019-09", "--out", str(tmp_path / "r.zarr")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("is2grid: error: searching NASA's CMR") and "Traceback" not in err
