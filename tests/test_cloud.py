"""The cloud read path against real servers on loopback: faults, credentials, secrets, inputs, async.

Servers: :class:`tests.servers.ScriptedHandler` (latency and scripted faults) and moto's S3 server
with IAM authentication switched on, so expired credentials really are refused.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import pickle
import threading
import time
import traceback
import warnings
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import is2grid
from is2grid.io.options import FetchOptions
from is2grid.io.policy import RetryPolicy
from is2grid.workflow import grid_granules

from .servers import Behaviour, self_signed_cert, serve_scripted, start_moto

DATA = Path(__file__).parent / "data"
SECRET = "SeCrEt-T0ken-do-not-leak"


@pytest.fixture(scope="module")
def granule(synthetic) -> Path:
    return synthetic["south-backward"]


@pytest.fixture(scope="module")
def local(granule):
    return xr.open_dataset(granule, engine="atl10").load()


@pytest.fixture
def scripted(granule):
    servers = []

    def start(**behaviour):
        plan = Behaviour(**behaviour)
        server, url = serve_scripted(granule.parent, plan)
        servers.append(server)
        return plan, f"{url}/{granule.name}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


# --- faults ---------------------------------------------------------------------------------

FAULTS = {
    "every 3rd request 503": {"fail_every": 3},
    "every 5th connection reset mid-body": {"reset_every": 5},
    "every 4th body cut short": {"short_every": 4},
    "every 7th request stalls past the timeout": {"stall_every": 7, "stall": 3.0},
    "every 3rd answer is the wrong range": {"wrong_range_every": 3},
    "1 byte every 0.4 s": {"trickle": 0.4},
}


@pytest.mark.parametrize("faults", FAULTS.values(), ids=FAULTS.keys())
def test_faults_give_right_values_or_a_named_error_in_time(scripted, local, faults):
    _plan, url = scripted(**faults)
    options = {"timeout": 1.0, "retries": 3, "backoff": 0.05}
    start = time.perf_counter()
    try:
        ds = xr.open_dataset(url, engine="atl10", storage_options=options).load()
    except is2grid.RemoteReadError as err:
        assert url in str(err) and "storage_options" in str(err)
    else:
        xr.testing.assert_identical(ds, local)
    # each request is cut at the timeout; retries are bounded (obstore's and ours)
    assert time.perf_counter() - start < 60


def test_503s_and_resets_are_retried_to_the_right_values(scripted, local):
    plan, url = scripted(fail_every=3, reset_every=5)
    ds = xr.open_dataset(url, engine="atl10", storage_options={"retries": 10, "backoff": 0.01}).load()
    xr.testing.assert_identical(ds, local)
    assert plan.requests > 10


def test_stalled_server_is_a_named_timeout_not_a_hang(scripted):
    _plan, url = scripted(stall_every=1, stall=30)
    start = time.perf_counter()
    with pytest.raises(is2grid.RemoteReadError, match="timed out"):
        xr.open_dataset(url, engine="atl10", storage_options={"timeout": 0.5, "retries": 1, "backoff": 0.01})
    assert time.perf_counter() - start < 10


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"timeout": 0}, "timeout"),
        ({"retries": -1}, "retries"),
        ({"retry": 3}, "unknown key"),
    ],
)
def test_bad_storage_options_are_named(granule, options, match):
    with pytest.raises(ValueError, match=match):
        xr.open_dataset(granule, engine="atl10", storage_options=options)


# --- fetching only what is needed ---------------------------------------------------------------


def test_load_reads_only_the_chunks_it_needs_in_few_concurrent_requests(scripted, granule, local):
    import h5py

    plan, url = scripted(latency=0.02)
    names = ["beam_fb_height", "height_segment_length_seg"]
    ds = xr.open_dataset(url, engine="atl10", variables=names)
    opened, metadata = plan.requests, plan.bytes_sent
    ds.load()
    xr.testing.assert_identical(ds, local[[*names, "beam", "row_size", "trajectory"]])
    with h5py.File(granule) as f:
        chunks = [
            f[f"{b}/freeboard_segment/{p}"].id.get_chunk_info(i).size
            for b in ("gt1l", "gt2l", "gt3l")
            for p in ("beam_fb_height", "heights/height_segment_length_seg", "latitude", "longitude", "delta_time")
            for i in range(f[f"{b}/freeboard_segment/{p}"].id.get_num_chunks())
        ]
    # the load moves the needed chunks plus at most one coalesced gap (< 64 KiB) between them
    assert plan.bytes_sent - metadata <= sum(chunks) + len(chunks) * 64 * 1024
    assert metadata <= 3e6, "opening reads headers in 64 KiB lines, not whole files"
    assert plan.requests - opened <= 2 * len(chunks), "read-ahead: the variables of one load share their requests"
    assert plan.max_in_flight >= 4


def test_no_byte_is_fetched_twice_by_open_then_load(scripted, local):
    """xarray reads the first and last time at open; those chunks are kept for the load, not fetched again."""
    plan, url = scripted()
    ds = xr.open_dataset(url, engine="atl10")
    assert plan.ranges, "open reads something"
    ds.load()
    xr.testing.assert_identical(ds, local)
    # (64 KiB header lines may hold small datasets too; what must not repeat is a data request)
    repeated = {r for r in plan.ranges if plan.ranges.count(r) > 1}
    assert repeated == set()


def test_xarray_time_check_costs_no_request_of_its_own(scripted, granule, local, monkeypatch):
    """With xarray's coder, the first and last time chunks that xarray checks at open come with the chunk
    indexes: the check fetches nothing. (The engine's own decoding, the default, has no check.)"""
    from is2grid.backend import opening

    coder = xr.coders.CFDatetimeCoder()
    plan, url = scripted(latency=0.01)
    during_decode = []
    decode = opening._decode

    def counted(store, *args, **kwargs):
        before = plan.requests
        ds = decode(store, *args, **kwargs)
        during_decode.append(plan.requests - before)
        return ds

    monkeypatch.setattr(opening, "_decode", counted)
    ds = xr.open_dataset(url, engine="atl10", decode_times=coder)
    assert during_decode == [0]
    xr.testing.assert_identical(ds.load(), local)
    repeated = {r for r in plan.ranges if plan.ranges.count(r) > 1}
    assert repeated == set(), "the kept time chunks serve the load too"
    for beams in (["gt1l"], ["gt2r", "gt1l"]):  # one beam: both ends in one dataset; any order of beams
        during_decode.clear()
        one = xr.open_dataset(url, engine="atl10", beams=beams, decode_times=coder)
        assert during_decode == [0]
        xr.testing.assert_identical(one.load(), xr.open_dataset(granule, engine="atl10", beams=beams).load())


def test_a_read_of_many_ranges_runs_them_all_at_once(scripted, granule):
    """obstore runs ten requests of one call at a time; more ranges are split into calls side by side."""
    from is2grid.io.options import FetchOptions
    from is2grid.io.sources import OBSTORE_PARALLEL, open_source

    plan, url = scripted(latency=0.2)
    source = open_source(url, FetchOptions(), None)
    size = source.size()
    starts = [i * size // 30 for i in range(1, 26)]  # far apart: one request each
    stops = [a + 1000 for a in starts]
    source.read(starts, stops)  # connections made
    before, plan.max_in_flight = plan.requests, 0
    blobs = source.read(starts, stops)
    assert plan.requests - before >= 25 and plan.max_in_flight > OBSTORE_PARALLEL
    data = granule.read_bytes()
    assert [bytes(b) for b in blobs] == [data[a:b] for a, b in zip(starts, stops, strict=True)]
    reversed_blobs = source.read(starts[::-1], stops[::-1])  # answers come back in the order asked
    assert [bytes(b) for b in reversed_blobs] == [data[a:b] for a, b in zip(starts[::-1], stops[::-1], strict=True)]


def test_load_async_equals_load_and_overlaps(scripted, local):
    plan, url = scripted(latency=0.02)
    ds = xr.open_dataset(url, engine="atl10", storage_options={"read_ahead": False})

    async def main():
        return await ds.load_async()

    xr.testing.assert_identical(asyncio.run(main()), local)
    assert plan.max_in_flight >= 4


def test_server_answering_404_is_not_found(scripted):
    _, url = scripted()
    with pytest.raises(is2grid.GranuleNotFoundError, match="no such object"):
        xr.open_dataset(url.replace(".h5", "_x.h5").replace("ATL10-02", "ATL10-01"), engine="atl10")


# --- credentials ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def moto_with_auth(granule):
    """moto's S3 on loopback, with IAM authentication on: two access keys of one user."""
    import boto3
    from moto import settings

    mp = pytest.MonkeyPatch()
    for key, value in {"AWS_ACCESS_KEY_ID": "setup", "AWS_SECRET_ACCESS_KEY": "setup"}.items():
        mp.setenv(key, value)
    mp.setenv("AWS_DEFAULT_REGION", "us-west-2")
    server, endpoint = start_moto()
    iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1")
    iam.create_user(UserName="reader")
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["s3:*", "iam:*"], "Resource": "*"}]}
    iam.put_user_policy(UserName="reader", PolicyName="read", PolicyDocument=json.dumps(policy))
    keys = [iam.create_access_key(UserName="reader")["AccessKey"] for _ in range(2)]

    def client(service: str, key: dict):
        return boto3.client(
            service,
            endpoint_url=endpoint,
            region_name="us-west-2",
            aws_access_key_id=key["AccessKeyId"],
            aws_secret_access_key=key["SecretAccessKey"],
        )

    s3 = client("s3", keys[0])
    s3.create_bucket(Bucket="nsidc-auth-test", CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    key = f"ATLAS/ATL10/006/2019/09/15/{granule.name}"
    s3.upload_file(str(granule), "nsidc-auth-test", key)
    mp.setattr(settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)  # from here on every request is authenticated
    yield endpoint, f"s3://nsidc-auth-test/{key}", keys, client("iam", keys[1])
    mp.undo()
    server.stop()


def _s3_keys(key: dict) -> dict:
    return {"aws_access_key_id": key["AccessKeyId"], "aws_secret_access_key": key["SecretAccessKey"]}


class RotatingProvider:
    """Hands out the first key until told to rotate; each answer expires after ``life`` seconds."""

    def __init__(self, keys, life: float):
        self.keys, self.life, self.current, self.calls = keys, life, 0, 0
        self.lock = threading.Lock()

    def __call__(self):
        with self.lock:
            self.calls += 1
            key = self.keys[self.current]
        return {
            "aws_access_key_id": key["AccessKeyId"],
            "aws_secret_access_key": key["SecretAccessKey"],
            "expires_at": dt.datetime.now(dt.UTC) + dt.timedelta(seconds=self.life),
        }


def test_refreshing_provider_keeps_a_run_going_across_expiry(moto_with_auth, local):
    endpoint, url, keys, iam = moto_with_auth
    provider = RotatingProvider(keys, life=1.0)
    options = {"endpoint_url": endpoint, "retries": 1, "backoff": 0.01}
    ds = xr.open_dataset(url, engine="atl10", credentials=provider, storage_options=options)
    np.testing.assert_array_equal(ds.latitude[:50].values, local.latitude[:50].values)
    # the first key is revoked and expires; a client that did not refresh would now be refused
    iam.update_access_key(UserName="reader", AccessKeyId=keys[0]["AccessKeyId"], Status="Inactive")
    provider.current = 1
    time.sleep(1.5)
    xr.testing.assert_identical(ds.load(), local)
    assert provider.calls >= 2
    iam.update_access_key(UserName="reader", AccessKeyId=keys[0]["AccessKeyId"], Status="Active")


def test_expired_static_credentials_are_an_authentication_error(moto_with_auth):
    endpoint, url, _, _ = moto_with_auth
    stale = {"aws_access_key_id": "AKIAEXPIRED", "aws_secret_access_key": SECRET, "endpoint_url": endpoint}
    with pytest.raises(
        is2grid.AuthenticationError, match=r"s3://nsidc-auth-test/.*not authenticated|access denied"
    ) as info:
        xr.open_dataset(url, engine="atl10", credentials=stale, storage_options={"retries": 0})
    assert SECRET not in "".join(traceback.format_exception(info.value))


def test_credentials_never_show(scripted, granule, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    plan, url = scripted()
    signed = f"{url}?X-Amz-Signature={SECRET}&X-Amz-Security-Token={SECRET}"
    creds = is2grid.Credentials(token=SECRET, s3={"aws_access_key_id": "A", "aws_secret_access_key": SECRET})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = xr.open_dataset(signed, engine="atl10", credentials=creds)
        ds.load()
        with pytest.raises(is2grid.GranuleError) as info:
            xr.open_dataset(signed.replace(".h5", "_missing.h5"), engine="atl10", credentials=creds)
    out = tmp_path / "out.nc"
    ds.to_netcdf(out)
    seen = [
        repr(ds),
        str(ds.attrs),
        str({k: v.encoding for k, v in ds.variables.items()}),
        repr(creds),
        str(creds),
        "".join(traceback.format_exception(info.value)),
        " ".join(str(w.message) for w in caught),
        caplog.text,
    ]
    for text in seen:
        assert SECRET not in text
    assert SECRET.encode() not in pickle.dumps(ds)
    assert SECRET.encode() not in pickle.dumps(creds)
    assert SECRET.encode() not in out.read_bytes()
    assert ds.attrs["source_file"] == granule.name
    # the token went nowhere: plain http and a host that is not Earthdata's
    assert all(a is None for a in plan.authorization)


def test_token_goes_only_to_allowed_https_hosts(granule, tmp_path, local, monkeypatch):
    cert, authority = self_signed_cert(tmp_path)
    plan = Behaviour()
    from .servers import ScriptedHandler  # noqa: F401  (the HTTPS variant below wraps the same handler)

    server, url = serve_scripted(granule.parent, plan)
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    https = url.replace("http://", "https://") + f"/{granule.name}"
    options = {"ca_bundle": str(authority)}
    try:
        monkeypatch.setenv("EARTHDATA_TOKEN", SECRET)
        xr.open_dataset(https, engine="atl10", storage_options=options).close()
        assert all(a is None for a in plan.authorization), "127.0.0.1 is not an Earthdata host"
        ds = xr.open_dataset(https, engine="atl10", storage_options={**options, "allow_hosts": ["127.0.0.1"]})
        xr.testing.assert_identical(ds.load(), local)
        assert plan.authorization[-1] == f"Bearer {SECRET}"
    finally:
        server.shutdown()
        server.server_close()


def test_pickled_remote_dataset_reads_in_the_same_process(moto_with_auth, local):
    endpoint, url, keys, _ = moto_with_auth
    creds = _s3_keys(keys[1])
    ds = xr.open_dataset(url, engine="atl10", credentials=creds, storage_options={"endpoint_url": endpoint})
    blob = pickle.dumps(ds)
    assert keys[1]["SecretAccessKey"].encode() not in blob
    np.testing.assert_array_equal(pickle.loads(blob).seg_dist_x.values, local.seg_dist_x.values)


# --- inputs: earthaccess granules and file objects -------------------------------------------------------


def _data_granule(http_base: str):
    from earthaccess.results import DataGranule

    record = json.loads((DATA / "earthaccess_granule.json").read_text().replace("{https}", http_base))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return DataGranule(record, cloud_hosted=True)


def test_earthaccess_granule_opens_through_its_https_link(scripted, granule, local):
    _, url = scripted()
    record = _data_granule(url.rsplit("/", 1)[0])
    assert record.data_links(access="external")[0].endswith(granule.name)
    ds = xr.open_dataset(record, engine="atl10", storage_options={"access": "external"})
    xr.testing.assert_identical(ds.load(), local)


def test_earthaccess_granule_direct_access_uses_s3(moto_with_auth, local, scripted):
    endpoint, _, keys, _ = moto_with_auth
    _, url = scripted()
    record = _data_granule(url.rsplit("/", 1)[0])
    creds = _s3_keys(keys[1])
    options = {"access": "direct", "endpoint_url": endpoint}
    ds = xr.open_dataset(record, engine="atl10", credentials=creds, storage_options=options)
    assert ds.attrs["source_file"] == local.attrs["source_file"]
    xr.testing.assert_identical(ds.load(), local)


def test_grid_granules_takes_search_results(scripted, granule):
    _, url = scripted()
    record = _data_granule(url.rsplit("/", 1)[0])
    from_record = grid_granules([record], res=25000, progress=False, storage_options={"access": "external"})
    from_path = grid_granules([granule], res=25000, progress=False)
    xr.testing.assert_equal(from_record, from_path)


def test_python_and_fsspec_file_objects(scripted, granule, local):
    import fsspec

    with open(granule, "rb") as f:
        xr.testing.assert_identical(xr.open_dataset(f, engine="atl10").load(), local)
    _, url = scripted()
    with fsspec.open(url, "rb") as f:
        ds = xr.open_dataset(f, engine="atl10")
        assert ds.attrs["source_file"] == granule.name
        xr.testing.assert_identical(ds.load(), local)


def test_something_else_is_a_named_error():
    with pytest.raises(is2grid.UnsupportedInputError, match="not a readable file object"):
        xr.open_dataset(object(), engine="atl10")


class S3CredentialsEndpoint:
    """A loopback stand-in for NSIDC's ``s3credentials``: Bearer token in, keys with an expiry out.

    Answers as NSIDC does (camelCase keys, ``expiration`` as ISO text); refuses another token with a
    redirect to the login page, as Earthdata Login does. ``current`` picks which key it hands out.
    """

    def __init__(self, keys, life: float):
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.keys, self.life, self.current, self.calls = keys, life, 0, 0
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                if self.headers.get("Authorization") != f"Bearer {SECRET}":
                    self.send_response(302)
                    self.send_header("Location", "https://urs.earthdata.nasa.gov/oauth/authorize")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                endpoint.calls += 1
                key = endpoint.keys[endpoint.current]
                expires = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=endpoint.life)
                body = json.dumps(
                    {
                        "accessKeyId": key["AccessKeyId"],
                        "secretAccessKey": key["SecretAccessKey"],
                        "sessionToken": None,
                        "expiration": expires.isoformat(sep=" ", timespec="seconds"),
                    }
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/s3credentials"

    def close(self):
        self.server.shutdown()


def test_a_token_gives_s3_credentials_from_the_daac_refreshed_at_their_expiry(moto_with_auth, local):
    """obstore's NasaEarthdataCredentialProvider against a loopback s3credentials endpoint and moto with IAM."""
    from is2grid.io.credentials import EarthdataS3

    endpoint, url, keys, iam = moto_with_auth
    daac = S3CredentialsEndpoint(keys, life=2.0)
    try:
        provider = EarthdataS3(SECRET, url=daac.url)
        assert SECRET not in repr(provider) and SECRET not in repr(is2grid.io.credentials.as_credentials(provider))
        options = {"endpoint_url": endpoint, "retries": 1, "backoff": 0.01}
        ds = xr.open_dataset(url, engine="atl10", credentials=provider, storage_options=options)
        np.testing.assert_array_equal(ds.latitude[:50].values, local.latitude[:50].values)
        # the first key is revoked and its answer expires: only a refresh at the stated expiry goes on
        iam.update_access_key(UserName="reader", AccessKeyId=keys[0]["AccessKeyId"], Status="Inactive")
        daac.current = 1
        time.sleep(2.5)
        xr.testing.assert_identical(ds.load(), local)
        assert daac.calls >= 2
        # a long run: grid_granules pickles the provider to its tasks and keeps refreshing
        result = grid_granules([url], res=25000, progress=False, credentials=provider, storage_options=options)
        assert result.attrs["segments_gridded"] > 0
        wrong = EarthdataS3("not-the-token", url=daac.url)
        with pytest.raises(is2grid.AuthenticationError, match="not authenticated"):
            xr.open_dataset(url, engine="atl10", credentials=wrong, storage_options=options).load()
    finally:
        iam.update_access_key(UserName="reader", AccessKeyId=keys[0]["AccessKeyId"], Status="Active")
        daac.close()


def test_earthaccess_auth_gives_refreshing_s3_credentials(moto_with_auth, local, monkeypatch):
    """An earthaccess.Auth's token goes to the DAAC's s3credentials endpoint (NSIDC's), through obstore."""
    import earthaccess

    from is2grid.io import credentials

    endpoint, url, keys, _ = moto_with_auth
    daac = S3CredentialsEndpoint(keys, life=3600)
    daac.current = 1
    monkeypatch.setattr(credentials.EarthdataS3.__init__, "__defaults__", (daac.url,))
    try:
        auth = earthaccess.Auth()
        auth.token = {"access_token": SECRET}
        ds = xr.open_dataset(url, engine="atl10", credentials=auth, storage_options={"endpoint_url": endpoint})
        xr.testing.assert_identical(ds.load(), local)
        assert daac.calls == 1
        assert SECRET not in repr(credentials.as_credentials(auth))
    finally:
        daac.close()


def test_grid_granules_on_a_cluster_reads_s3_with_installed_credentials(moto_with_auth, granule):
    import distributed

    endpoint, url, keys, _ = moto_with_auth
    creds = _s3_keys(keys[1])
    expected = grid_granules([granule], res=25000, progress=False)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with distributed.Client(cluster) as client:
            result = grid_granules(
                [url],
                res=25000,
                credentials=creds,
                storage_options={"endpoint_url": endpoint},
                client=client,
                progress=False,
            )
    xr.testing.assert_equal(result.drop_attrs(), expected.drop_attrs())


def test_earthdata_login_page_is_an_authentication_error(scripted):
    _, url = scripted(login_page=True)
    with pytest.raises(is2grid.AuthenticationError, match="Earthdata Login"):
        xr.open_dataset(url, engine="atl10")


@pytest.mark.parametrize("target", [b"/data/granule.h5", 42])
def test_odd_targets_are_named(target):
    with pytest.raises(is2grid.UnsupportedInputError):
        xr.open_dataset(target, engine="atl10")


def test_directory_and_fifo_are_refused(tmp_path):
    import os

    with pytest.raises(is2grid.UnsupportedInputError, match="directory"):
        xr.open_dataset(tmp_path, engine="atl10")
    fifo = tmp_path / "ATL10-02_20190915000000_12340402_006_01.h5"
    os.mkfifo(fifo)
    with pytest.raises(is2grid.UnsupportedInputError, match="not a regular file"):
        xr.open_dataset(fifo, engine="atl10")


def test_password_in_url_never_shows(scripted):
    _, url = scripted()
    with pytest.raises(is2grid.GranuleError) as info:
        xr.open_dataset(url.replace("http://", f"http://user:{SECRET}@").replace(".h5", "_x.h5"), engine="atl10")
    assert SECRET not in "".join(traceback.format_exception(info.value))


def test_reads_survive_a_fork(granule, local, scripted):
    import multiprocessing

    _, url = scripted()
    for target in (str(granule), url):  # pools, clients and a cached handle exist before the fork
        ds = xr.open_dataset(target, engine="atl10")
        np.testing.assert_array_equal(ds.latitude[:10].values, local.latitude[:10].values)
    context = multiprocessing.get_context("fork")
    with context.Pool(1) as pool:
        for target in (str(granule), url):
            result = pool.apply_async(_mean_freeboard, (target,)).get(timeout=60)
            assert result == pytest.approx(float(local.beam_fb_height.mean()))


def _mean_freeboard(path: str) -> float:
    return float(xr.open_dataset(path, engine="atl10").beam_fb_height.mean())


def test_the_same_granule_twice_is_gridded_once(granule, tmp_path):
    import shutil

    twin = tmp_path / f"processed_{granule.name.replace('_01.h5', '_02.h5')}"  # another folder, prefix, revision
    shutil.copy(granule, twin)
    once = grid_granules([granule], res=25000, progress=False)
    with pytest.warns(is2grid.Is2gridWarning, match="appear twice"):
        twice = grid_granules([granule, twin, str(granule)], res=25000, progress=False)
    xr.testing.assert_equal(once.n_segments, twice.n_segments)


def test_wrong_secret_is_an_authentication_error(moto_with_auth):
    endpoint, url, keys, _ = moto_with_auth
    wrong = {"aws_access_key_id": keys[1]["AccessKeyId"], "aws_secret_access_key": SECRET, "endpoint_url": endpoint}
    with pytest.raises(is2grid.AuthenticationError, match="SignatureDoesNotMatch") as info:
        xr.open_dataset(url, engine="atl10", credentials=wrong, storage_options={"retries": 0})
    assert SECRET not in "".join(traceback.format_exception(info.value))


def test_throttling_after_retries_is_named(scripted):
    _, url = scripted(fail_every=1)
    with pytest.raises(is2grid.RemoteReadError, match="throttling"):
        xr.open_dataset(url, engine="atl10", storage_options={"retries": 1, "backoff": 0.01})


def test_s3_is_https_unless_the_endpoint_says_otherwise():
    from is2grid.io.options import FetchOptions
    from is2grid.io.policy import client_options

    assert client_options(FetchOptions(), allow_http=False)["allow_http"] is False


def test_dask_chunk_tasks_fetch_only_their_own_variable(scripted, granule, local):
    import h5py

    plan, url = scripted()
    ds = xr.open_dataset(url, engine="atl10", chunks={})
    opened = plan.bytes_sent
    total = float(ds.beam_fb_height.sum().compute())
    assert total == pytest.approx(float(local.beam_fb_height.sum()), rel=1e-6)
    with h5py.File(granule) as f:
        chunks = [
            f[f"{b}/freeboard_segment/beam_fb_height"].id.get_chunk_info(i).size
            for b in ("gt1l", "gt2l", "gt3l")
            for i in range(f[f"{b}/freeboard_segment/beam_fb_height"].id.get_num_chunks())
        ]
    assert plan.bytes_sent - opened <= sum(chunks) + len(chunks) * 64 * 1024, "no read-ahead of other variables"


def test_grid_granules_from_s3_into_a_store_skipping_a_missing_object(moto_with_auth, granule, tmp_path):
    """Years-of-granules path against moto's S3: one object missing is skipped and listed, the rest stored."""
    endpoint, url, keys, _ = moto_with_auth
    missing = url.replace("20190915000000", "20190916000000")
    with pytest.warns(is2grid.Is2gridWarning, match="1 of 2 granules skipped"):
        stored = grid_granules(
            [url, missing], res=25000, credentials=_s3_keys(keys[0]), storage_options={"endpoint_url": endpoint},
            progress=False, store=tmp_path / "s3.zarr", errors="skip",
        )  # fmt: skip
    assert missing.rsplit("/", 1)[-1] in stored.attrs["granules_skipped"]
    assert stored.attrs["granules_gridded"] == 1
    expected = grid_granules([granule], res=25000, progress=False).reindex_like(stored.n_segments, fill_value=0)
    np.testing.assert_array_equal(stored.n_segments.values, expected.n_segments.values)


# --- deadlines on every path, and what a pre-signed URL can meet --------------------------------------


@pytest.mark.parametrize("presigned", [False, True], ids=["obstore", "pre-signed (requests)"])
def test_a_trickling_server_fails_within_the_stated_bound_on_every_path(scripted, presigned):
    """Each attempt is cut at `timeout` however the bytes come: the read ends within the policy's stated worst case."""
    _plan, url = scripted(trickle=0.2)
    if presigned:
        url += f"?X-Amz-Signature={SECRET}"
    options = {"timeout": 1.5, "retries": 1, "backoff": 0.05}
    bound = RetryPolicy.of(FetchOptions.parse(options)[0]).worst_case + 3.0  # + connect and start-up
    start = time.perf_counter()
    with pytest.raises(is2grid.RemoteReadError, match="timed out"):
        xr.open_dataset(url, engine="atl10", storage_options=options)
    elapsed = time.perf_counter() - start
    assert elapsed < bound, f"{elapsed:.1f} s, more than the stated bound of {bound:.1f} s"


def test_a_pre_signed_url_answered_by_a_login_page_is_an_authentication_error(scripted):
    _plan, url = scripted(login_page=True)
    with pytest.raises(is2grid.AuthenticationError, match="Earthdata Login") as info:
        xr.open_dataset(f"{url}?X-Amz-Signature={SECRET}", engine="atl10", storage_options={"retries": 0})
    assert SECRET not in "".join(traceback.format_exception(info.value))


def test_ca_bundle_is_honoured_for_pre_signed_https_urls(granule, tmp_path, local):
    import ssl

    cert, authority = self_signed_cert(tmp_path)
    server, url = serve_scripted(granule.parent, Behaviour())
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    signed = url.replace("http://", "https://") + f"/{granule.name}?X-Amz-Signature={SECRET}"
    try:
        with pytest.raises(is2grid.RemoteReadError, match=r"certificate is not trusted.*ca_bundle"):
            xr.open_dataset(signed, engine="atl10", storage_options={"retries": 0})
        ds = xr.open_dataset(signed, engine="atl10", storage_options={"ca_bundle": str(authority)})
        xr.testing.assert_identical(ds.load(), local)
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        (f"https://user:{SECRET}@[::1/ATL10.h5?sig={SECRET}", "Invalid IPv6 URL"),
        ("http://127.0.0.1:99999/ATL10.h5", "Port out of range"),
        ("https://exa mple.org/ATL10.h5", "space in the host"),
        ("https:///ATL10.h5", "without a host"),
    ],
)
def test_malformed_urls_are_named_without_their_secrets(url, problem):
    with pytest.raises(is2grid.UnsupportedInputError, match=problem) as info:
        xr.open_dataset(url, engine="atl10")
    assert SECRET not in "".join(traceback.format_exception(info.value))


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("NotFoundError", is2grid.GranuleNotFoundError),
        ("UnauthenticatedError", is2grid.AuthenticationError),
        ("PermissionDeniedError", is2grid.AuthenticationError),
    ],
)
def test_obstore_errors_are_classified_by_their_type(name, expected):
    """The typed exceptions decide, whatever their text says (text is matched only for the generic ones)."""
    from obstore import exceptions

    from is2grid.io.policy import translate

    found = translate(getattr(exceptions, name)("a message with no status code in it"), "granule.h5")
    assert type(found) is expected and "granule.h5" in str(found)


# --- one retry policy for every layer ------------------------------------------------------------------


def test_one_retry_policy_configures_obstore_urllib3_and_the_own_loop():
    policy = RetryPolicy.of(FetchOptions.parse({"retries": 3, "backoff": 0.5, "timeout": 20})[0])
    assert [policy.wait(i) for i in range(5)] == [0.5, 1.0, 2.0, 4.0, 5.0]  # doubling, at most 5 s
    assert policy.budget == 4 * 20 + 0.5 + 1 + 2
    assert policy.worst_case == 2 * policy.budget + 20
    store = policy.obstore()
    assert store["max_retries"] == 3 and store["retry_timeout"].total_seconds() == policy.budget
    assert store["backoff"]["init_backoff"].total_seconds() == 0.5
    retry = policy.urllib3()
    assert retry.total == retry.status == 3 and retry.backoff_factor == 0.5 and 503 in retry.status_forcelist
    assert not retry.raise_on_status  # the last answer is seen, and named
    # the defaults, as docs/usage.md states them
    assert (RetryPolicy.of(FetchOptions()).budget, RetryPolicy.of(FetchOptions()).worst_case) == (301.5, 663.0)


def test_the_own_loop_retries_only_what_the_clients_cannot_see_and_stops_at_the_budget():
    from is2grid.io.policy import Transient

    policy = RetryPolicy(retries=3, backoff=0.01, timeout=1.0)
    calls = []

    def flaky(starts, stops):
        calls.append(list(starts))
        if len(calls) <= 2:
            raise Transient("body cut short")
        return [b - a for a, b in zip(starts, stops, strict=True)]

    assert policy.retrying(flaky, [0, 10, 20, 30], [5, 15, 25, 35]) == [5, 5, 5, 5]
    assert calls[0] == [0, 10, 20, 30] and calls[1] == [0, 10]  # a failed batch is retried as halves

    def final(starts, stops):
        calls.append(starts)
        raise is2grid.RemoteReadError("HTTP 503 after obstore's retries")

    calls.clear()
    with pytest.raises(is2grid.RemoteReadError, match="503"):
        policy.retrying(final, [0], [1])
    assert len(calls) == 1, "what obstore or urllib3 retried already is not retried again"
    # tries that take long (each retried by obstore for up to a budget of its own): the budget ends them
    slow = RetryPolicy(retries=50, backoff=0.01, timeout=0.05, max_backoff=0.01)  # budget: 2.55 + 0.5 s

    def cut_after_a_while(starts, stops):
        calls.append(starts)
        time.sleep(0.3)
        raise Transient("cut short")

    calls.clear()
    start = time.perf_counter()
    with pytest.raises(is2grid.RemoteReadError, match="cut short"):
        slow.retrying(cut_after_a_while, [0], [1])
    assert time.perf_counter() - start <= slow.budget + 0.3 + 0.5 and len(calls) < 51


def test_the_requests_path_retries_503s_through_urllib3(scripted, local):
    plan, url = scripted(fail_every=3)
    ds = xr.open_dataset(
        f"{url}?X-Amz-Signature={SECRET}", engine="atl10", storage_options={"retries": 10, "backoff": 0.01}
    ).load()
    xr.testing.assert_identical(ds, local)
    assert plan.requests >= len(plan.ranges) * 1.3  # every third answer was a 503, and was asked again
