"""Where a granule lives: URL -> h5coro driver, plus drivers that fail loudly.

h5coro's own drivers log and return None (S3) or raise a bare RuntimeError that h5coro turns
into a ``None`` dataset; these subclasses raise is2grid errors naming the resource instead.
"""

from __future__ import annotations

import functools
import os
from typing import Any
from urllib.parse import urlparse

from is2grid.errors import CorruptGranuleError, GranuleError, GranuleNotFoundError, NotHDF5Error

SUPPORTED_SCHEMES = ("local path", "file://", "s3://", "https://", "http://")
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def resolve(path_or_url: str | os.PathLike) -> tuple[str, str]:
    """Return (kind, resource) with kind in {"file", "s3", "http"}.

    Examples
    --------
    >>> resolve("s3://nsidc-cumulus-prod-protected/ATLAS/ATL10/006/x.h5")
    ('s3', 'nsidc-cumulus-prod-protected/ATLAS/ATL10/006/x.h5')
    >>> resolve("file:///data/x.h5")
    ('file', '/data/x.h5')
    """
    text = os.fspath(path_or_url)
    if not isinstance(text, str):
        raise TypeError(f"expected a str or os.PathLike path, got {type(path_or_url).__name__}")
    parsed = urlparse(text)
    scheme = parsed.scheme.lower()
    if scheme == "" or (len(scheme) == 1 and os.name == "nt"):
        return "file", text
    if scheme == "file":
        return "file", parsed.path
    if scheme == "s3":
        return "s3", f"{parsed.netloc}{parsed.path}"
    if scheme in ("http", "https"):
        return "http", text
    raise ValueError(f"{text!r}: unsupported URL scheme {scheme!r}. Supported: {', '.join(SUPPORTED_SCHEMES)}.")


def open_h5coro(path_or_url: str, credentials: Any = None, mode: Any = "r"):
    """Open a granule with h5coro, checking that it exists and is HDF5.

    ``credentials``: for ``s3://`` a dict as h5coro takes it (``aws_access_key_id``,
    ``aws_secret_access_key``, ``aws_session_token``; optionally ``endpoint_url``); for
    ``https://`` an Earthdata Login token (defaults to the ``EARTHDATA_TOKEN`` environment variable).
    """
    from h5coro import h5coro

    # xarray's file manager may pass its "no mode" sentinel, which is not identical after unpickling
    if isinstance(mode, str) and mode not in ("r", "rb"):
        raise ValueError(f"{path_or_url}: h5coro reads only; mode={mode!r} is not supported.")
    if isinstance(credentials, tuple):
        credentials = dict(credentials)
    kind, resource = resolve(path_or_url)
    if kind == "file":
        if not os.path.exists(resource):
            raise GranuleNotFoundError(f"{resource}: no such file. Check the path, or download the granule first.")
        with open(resource, "rb") as f:
            head = f.read(8)
        if head != HDF5_SIGNATURE:
            raise NotHDF5Error(f"{resource}: not an HDF5 file (no HDF5 signature). ATL10 granules are HDF5 (.h5).")
        driver = _file_driver()
        creds: Any = {}
    elif kind == "s3":
        driver = _s3_driver()
        creds = dict(credentials or {})
    else:
        driver = _http_driver()
        creds = credentials if credentials is not None else os.environ.get("EARTHDATA_TOKEN")
    try:
        granule = h5coro.H5Coro(resource, driver, credentials=creds, errorChecking=True)
    except GranuleError:
        raise
    except Exception as err:
        raise NotHDF5Error(
            f"{path_or_url}: not a readable HDF5 file ({type(err).__name__}: {err}). "
            "Is it a complete ATL10 granule? Download it again if it was cut short."
        ) from err
    return granule


@functools.cache
def _file_driver():
    from h5coro.filedriver import FileDriver

    return FileDriver


@functools.cache
def _s3_driver():
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError
    from h5coro.s3driver import S3Driver

    class LoudS3Driver(S3Driver):
        def __init__(self, resource, credentials, session=None, max_connections=None):
            credentials = dict(credentials or {})
            endpoint = credentials.pop("endpoint_url", None) or os.environ.get("AWS_ENDPOINT_URL_S3")
            super().__init__(resource, credentials, session, max_connections)
            self.url = f"s3://{resource}"
            if endpoint:
                self.client = self.session.client(
                    "s3",
                    endpoint_url=endpoint,
                    config=boto3.session.Config(max_pool_connections=self.max_connections, retries={"max_attempts": 2}),
                )

        def read(self, offset, size):
            try:
                response = self.client.get_object(
                    Bucket=self.bucket_name, Key=self.key, Range=f"bytes={offset}-{offset + size - 1}"
                )
                return response["Body"].read()
            except ClientError as err:
                code = str(err.response.get("Error", {}).get("Code", ""))
                if code in ("NoSuchKey", "NoSuchBucket", "404"):
                    raise GranuleNotFoundError(
                        f"{self.url}: no such object ({code}). Check the bucket and key."
                    ) from err
                if code in ("AccessDenied", "403", "ExpiredToken", "InvalidAccessKeyId"):
                    raise GranuleError(
                        f"{self.url}: access denied ({code}). NSIDC S3 credentials last one hour and work only in "
                        "AWS us-west-2: refresh them with earthaccess.get_s3_credentials('NSIDC'), or use the "
                        "https:// URL from elsewhere."
                    ) from err
                raise CorruptGranuleError(
                    f"{self.url}: S3 read of bytes {offset}-{offset + size - 1} failed: {err}"
                ) from err
            except BotoCoreError as err:
                raise GranuleError(f"{self.url}: cannot reach S3 ({err}). Check the network and endpoint.") from err

    return LoudS3Driver


@functools.cache
def _http_driver():
    import requests
    from h5coro.webdriver import HTTPDriver

    class LoudHTTPDriver(HTTPDriver):
        def read(self, pos, size):
            try:
                reply = self.session.get(
                    self.resource, headers={"Range": f"bytes={pos}-{pos + size - 1}"}, allow_redirects=True, timeout=30
                )
            except requests.RequestException as err:
                raise GranuleError(
                    f"{self.resource}: request failed ({type(err).__name__}: {err}). Check the URL and network."
                ) from err
            if reply.status_code == 206:
                return reply.content
            if reply.status_code == 200:
                # a server that ignores Range sends the whole object
                return reply.content[pos : pos + size]
            if reply.status_code == 416:
                return b""
            if reply.status_code == 404:
                raise GranuleNotFoundError(f"{self.resource}: HTTP 404, no such granule. Check the URL.")
            if reply.status_code in (401, 403):
                raise GranuleError(
                    f"{self.resource}: HTTP {reply.status_code}, not authorised. Pass an Earthdata Login token "
                    "(credentials=... or the EARTHDATA_TOKEN environment variable; earthaccess.login() gives one)."
                )
            raise CorruptGranuleError(
                f"{self.resource}: HTTP {reply.status_code} reading bytes {pos}-{pos + size - 1}."
            )

    return LoudHTTPDriver
