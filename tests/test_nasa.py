"""Opt-in tests against NASA Earthdata (need the internet and Earthdata Login): ``pytest -m nasa``.

Credentials come from the environment (EARTHDATA_USERNAME / EARTHDATA_PASSWORD) or ~/.netrc.
"""

from __future__ import annotations

import pytest
import xarray as xr

pytestmark = pytest.mark.nasa


@pytest.fixture(scope="module")
def granule():
    earthaccess = pytest.importorskip("earthaccess")
    auth = earthaccess.login(strategy="environment") or earthaccess.login(strategy="netrc")
    results = earthaccess.search_data(
        short_name="ATL10", version="006", bounding_box=(-180, -78, -160, -74), temporal=("2019-09-15", "2019-09-15")
    )
    assert results, "CMR found no ATL10 v006 granule for the Ross Sea on 2019-09-15"
    return auth, results[0]


def test_https_granule_opens_and_grids(granule):
    auth, result = granule
    url = next(u for u in result.data_links(access="external") if u.endswith(".h5"))
    ds = xr.open_dataset(url, engine="atl10", credentials=auth.token["access_token"])
    assert ds.attrs["hemisphere"] == "south" and ds.sizes["segment"] > 0
    grid = ds.isel(segment=slice(0, 20000)).is2grid.to_ease2(res=25000)
    assert int(grid.n_segments.sum()) > 0


def test_s3_granule_in_us_west_2(granule):
    import earthaccess

    auth, result = granule
    if not earthaccess.__store__.in_region:
        pytest.skip("direct S3 access works only inside AWS us-west-2")
    creds = auth.get_s3_credentials(daac="NSIDC")
    url = next(u for u in result.data_links(access="direct") if u.endswith(".h5"))
    credentials = {
        "aws_access_key_id": creds["accessKeyId"],
        "aws_secret_access_key": creds["secretAccessKey"],
        "aws_session_token": creds["sessionToken"],
    }
    ds = xr.open_dataset(url, engine="atl10", credentials=credentials)
    assert ds.sizes["segment"] > 0


def test_search_result_and_auth_open_and_grid(granule):
    from is2grid.workflow import grid_granules

    auth, result = granule
    ds = xr.open_dataset(result, engine="atl10", credentials=auth, storage_options={"timeout": 60, "retries": 5})
    assert ds.sizes["segment"] > 0
    grid = grid_granules([result], res=25000, credentials=auth, progress=False)
    assert int(grid.n_segments.sum()) > 0


def test_nasa_sidecar_reads_as_the_hdf5_header(granule):
    """Where NSIDC keeps a DMR++ sidecar beside the granule, reading through it gives the same Dataset.

    Skipped (with the reason) where the collection has no sidecar: is2grid then reads the HDF5 header.
    """
    import is2grid

    auth, result = granule
    url = next(u for u in result.data_links(access="external") if u.endswith(".h5"))
    token = auth.token["access_token"]
    try:
        through = xr.open_dataset(url, engine="atl10", credentials=token, storage_options={"dmrpp": True})
    except is2grid.GranuleError as err:
        if "is not there" in str(err):
            pytest.skip(f"no DMR++ sidecar beside {url}")
        raise
    plain = xr.open_dataset(url, engine="atl10", credentials=token, storage_options={"dmrpp": False})
    part = {"segment": slice(0, 20000)}
    xr.testing.assert_identical(through.isel(part).load(), plain.isel(part).load())
