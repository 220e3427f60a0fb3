"""s3:// and https:// reads through h5coro against real servers on loopback (no internet)."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import is2grid

from .servers import NoRangeHandler, RangeHandler, fake_aws_env, self_signed_cert, serve_http, start_moto


@pytest.fixture(scope="module")
def local(synthetic):
    return xr.open_dataset(synthetic["south-backward"], engine="atl10").load()


@pytest.fixture(scope="module")
def http_server(synthetic):
    directory = synthetic["south-backward"].parent
    server, url = serve_http(directory)
    yield url, synthetic["south-backward"].name
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def https_server(synthetic, tmp_path_factory):
    cert, authority = self_signed_cert(tmp_path_factory.mktemp("tls"))
    server, url = serve_http(synthetic["south-backward"].parent, certfile=cert)
    yield url, synthetic["south-backward"].name, authority
    server.shutdown()
    server.server_close()


def test_http_range_reads_equal_local(http_server, local):
    url, name = http_server
    RangeHandler.requests_seen.clear()
    ds = xr.open_dataset(f"{url}/{name}", engine="atl10")
    xr.testing.assert_identical(ds.load(), local)
    assert RangeHandler.requests_seen, "the server was not asked"


def test_https_with_token_equal_local(https_server, local, monkeypatch):
    url, name, cert = https_server
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
    loopback = {"allow_hosts": ["127.0.0.1"]}  # the token goes only to Earthdata hosts unless allowed
    ds = xr.open_dataset(f"{url}/private/{name}", engine="atl10", credentials="good-token", storage_options=loopback)
    xr.testing.assert_identical(ds.load(), local)
    monkeypatch.setenv("EARTHDATA_TOKEN", "good-token")
    ds = xr.open_dataset(f"{url}/private/{name}", engine="atl10", storage_options=loopback)
    np.testing.assert_array_equal(ds.latitude.values, local.latitude.values)


def test_https_without_token_says_how_to_authenticate(https_server, monkeypatch):
    url, name, cert = https_server
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
    monkeypatch.delenv("EARTHDATA_TOKEN", raising=False)
    with pytest.raises(is2grid.GranuleError, match=r"401.*Earthdata Login token"):
        xr.open_dataset(f"{url}/private/{name}", engine="atl10")


def test_http_missing_object(http_server):
    url, _ = http_server
    with pytest.raises(is2grid.GranuleNotFoundError, match="404"):
        xr.open_dataset(f"{url}/ATL10-02_20190915101500_12340401_006_01.h5", engine="atl10")


def test_http_server_fault(http_server):
    url, name = http_server
    with pytest.raises(is2grid.GranuleError, match=f"broken/{name}"):
        xr.open_dataset(f"{url}/broken/{name}", engine="atl10")


def test_http_connection_refused():
    with pytest.raises(is2grid.GranuleError, match=r"127\.0\.0\.1:9.*request failed"):
        xr.open_dataset("http://127.0.0.1:9/ATL10-02_20190915101500_12340401_006_01.h5", engine="atl10")


def test_server_ignoring_range_still_gives_right_values(synthetic, local):
    server, url = serve_http(synthetic["south-backward"].parent, handler=NoRangeHandler)
    try:
        with pytest.warns(is2grid.Is2gridWarning, match="ignores HTTP Range"):
            ds = xr.open_dataset(f"{url}/{synthetic['south-backward'].name}", engine="atl10")
        xr.testing.assert_identical(ds.load(), local)
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def s3_bucket(synthetic):
    import boto3

    mp = pytest.MonkeyPatch()
    fake_aws_env(mp)
    server, endpoint = start_moto()
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-west-2")
    client.create_bucket(Bucket="nsidc-test", CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    key = f"ATLAS/ATL10/006/2019/09/15/{synthetic['south-backward'].name}"
    client.upload_file(str(synthetic["south-backward"]), "nsidc-test", key)
    credentials = {
        "aws_access_key_id": "testing",
        "aws_secret_access_key": "testing",
        "aws_session_token": "testing",
        "endpoint_url": endpoint,
    }
    yield credentials, key
    server.stop()
    mp.undo()


def test_s3_reads_equal_local(s3_bucket, local):
    credentials, key = s3_bucket
    ds = xr.open_dataset(f"s3://nsidc-test/{key}", engine="atl10", credentials=credentials)
    xr.testing.assert_identical(ds.load(), local)


def test_s3_dataset_pickles_with_credentials(s3_bucket, local):
    import pickle

    credentials, key = s3_bucket
    ds = pickle.loads(pickle.dumps(xr.open_dataset(f"s3://nsidc-test/{key}", engine="atl10", credentials=credentials)))
    np.testing.assert_array_equal(ds.seg_dist_x.values, local.seg_dist_x.values)


def test_s3_missing_key(s3_bucket):
    credentials, _ = s3_bucket
    with pytest.raises(is2grid.GranuleNotFoundError, match=r"s3://nsidc-test/nope/ATL10.*no such object"):
        xr.open_dataset(
            "s3://nsidc-test/nope/ATL10-02_20190915101500_12340401_006_01.h5", engine="atl10", credentials=credentials
        )


def test_granules_from_one_server_share_one_client(http_server, local):
    """Each store is an HTTP client with its own connections: granules from the same server reuse one."""
    from is2grid.io import sources

    url, name = http_server
    sources._STORES.clear()
    for _ in range(3):
        ds = xr.open_dataset(f"{url}/{name}", engine="atl10")
        xr.testing.assert_identical(ds.load(), local)
    assert [key[:2] for key in sources._STORES] == [("http", url)]
    other = xr.open_dataset(f"{url}/{name}", engine="atl10", storage_options={"timeout": 30})
    xr.testing.assert_identical(other.load(), local)
    assert len(sources._STORES) == 2, "other options, another client"
