"""Retry and error policy of remote reads: client options, and remote failures turned into is2grid errors."""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
from typing import Any

from is2grid.errors import (
    AuthenticationError,
    GranuleError,
    GranuleNotFoundError,
    RemoteReadError,
)
from is2grid.io.options import FetchOptions


def client_options(options: FetchOptions, allow_http: bool) -> dict[str, Any]:
    """The obstore client options: timeouts, plain HTTP or not, extra trusted certificates."""
    found: dict[str, Any] = {
        "timeout": dt.timedelta(seconds=options.timeout),
        "connect_timeout": dt.timedelta(seconds=options.connect_timeout),
        "allow_http": allow_http,
    }
    bundle = ca_bundle(options)
    if bundle:
        with open(bundle, "rb") as f:
            found["root_certificate"] = f.read()
    return found


def ca_bundle(options: FetchOptions) -> str | None:
    """The extra trusted certificates of both remote paths: the option, else the environment's."""
    return options.ca_bundle or os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("SSL_CERT_FILE")


def retry_config(options: FetchOptions) -> dict[str, Any]:
    """The obstore retry settings from the fetch options (retries, backoff, overall timeout)."""
    return {
        "max_retries": int(options.retries),
        "backoff": {"init_backoff": dt.timedelta(seconds=options.backoff), "max_backoff": dt.timedelta(seconds=5)},
        "retry_timeout": dt.timedelta(seconds=options.timeout * (options.retries + 1)),
    }


class QueryRedactor(logging.Filter):
    """urllib3 logs each request line at DEBUG, pre-signed query string included: cut it out."""

    pattern = re.compile(r"\?[^\s\"']*")

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.pattern.sub("?<redacted>", str(record.msg))
        record.args = tuple(self.pattern.sub("?<redacted>", a) if isinstance(a, str) else a for a in record.args or ())
        return True


def hide_query_strings_in(logger_name: str) -> None:
    """Redact pre-signed query strings in the records of a logger (urllib3 logs request lines)."""
    logger = logging.getLogger(logger_name)
    if not any(isinstance(f, QueryRedactor) for f in logger.filters):
        logger.addFilter(QueryRedactor())


def status_error(code: int, name: str) -> GranuleError:
    """The is2grid error of an HTTP status, naming the granule."""
    if code == 404:
        return GranuleNotFoundError(f"{name}: no such object (404). Check the URL or path.")
    if code in (401, 403):
        return AuthenticationError(
            f"{name}: not authenticated ({code}). The pre-signed URL may have expired: get a new one."
        )
    if code == 200:
        return RemoteReadError(f"{name}: the server ignores Range requests (HTTP 200 for a range).")
    return RemoteReadError(f"{name}: request failed (HTTP {code}).")


class RangeIgnored(Exception):
    """The server answered a range request with the whole object."""


class Transient(RemoteReadError):
    """A failure worth another try: a reset or cut-short body, a wrong range, a timeout."""


class translated:
    """Turn obstore and OS errors into is2grid errors that name the granule (never its secrets)."""

    def __init__(self, name: str):
        self.name = name

    def __enter__(self):
        return self

    def __exit__(self, kind, err, tb):
        if err is None or isinstance(err, GranuleError | RangeIgnored) or not isinstance(err, Exception):
            return False
        raise translate(err, self.name) from None


def translate(err: BaseException, name: str) -> BaseException:
    """An obstore or OS error as the is2grid error that names the granule and the fix.

    obstore's typed exceptions decide first (not found, unauthenticated, permission denied); the rest of
    its failures are one generic class, told apart by the status and error kind in their text.
    """
    from obstore import exceptions as store

    text = str(err)
    status = re.search(r"status code: (\d{3})|status: (\d{3})", text)
    code = int(next(g for g in status.groups() if g)) if status else None
    kind = type(err).__name__
    s3_code = re.search(r"<Code>(\w+)</Code>", text)
    s3 = s3_code[1] if s3_code else ""
    if "InvalidCertificate" in text or "UnknownIssuer" in text:
        return RemoteReadError(
            f"{name}: the server's TLS certificate is not trusted. If you trust it, pass its CA as "
            "storage_options={'ca_bundle': 'ca.pem'} (or set REQUESTS_CA_BUNDLE)."
        )
    if "RangeNotSupported" in text or "Range request not supported" in text:
        return RangeIgnored()
    if isinstance(err, FileNotFoundError | store.NotFoundError) or code == 404 or s3 in ("NoSuchKey", "NoSuchBucket"):
        return GranuleNotFoundError(f"{name}: no such object ({s3 or code or 'not found'}). Check the URL or path.")
    if (
        code == 401
        or isinstance(err, store.UnauthenticatedError)
        or s3 in ("InvalidAccessKeyId", "ExpiredToken", "InvalidToken")
    ):
        return AuthenticationError(
            f"{name}: not authenticated ({s3 or code or kind}). For https:// pass an Earthdata Login token "
            "(credentials=..., storage_options={'token': ...}, or EARTHDATA_TOKEN; earthaccess.login() gives one). "
            "For s3:// pass fresh credentials (earthaccess.get_s3_credentials('NSIDC'), valid one hour, "
            "usable only inside AWS us-west-2)."
        )
    if code == 403 or isinstance(err, store.PermissionDeniedError) or s3 in ("AccessDenied", "SignatureDoesNotMatch"):
        return AuthenticationError(
            f"{name}: access denied ({s3 or code or kind}). Check that your Earthdata Login account may read "
            "this collection and, for s3://, that you run inside AWS us-west-2 with current credentials."
        )
    if code in (429, 503) or s3 in ("SlowDown", "Throttling", "RequestLimitExceeded"):
        return RemoteReadError(
            f"{name}: the server kept throttling requests ({s3 or f'HTTP {code}'}) after the configured retries. "
            "Read with fewer workers at once, retry later, or raise storage_options={'retries': n}."
        )
    if (isinstance(err, OSError) and not kind.endswith("Error")) or isinstance(err, PermissionError):
        return GranuleError(f"{name}: cannot be read ({err}). Check the path and its permissions.")
    summary = text.split("\n\n", 1)[0]
    http_kind = re.search(r"HttpError \{\s*kind: (\w+)", text)
    os_message = re.search(r'message: "([^"]+)"', text)
    timed_out = (http_kind is not None and http_kind[1] == "Timeout") or "operation timed out" in summary.lower()
    reason = "timed out" if timed_out else "failed"
    detail = f"HTTP {code}" if code else (os_message[1] if os_message else (http_kind[1] if http_kind else kind))
    unexpected = re.search(r"Requested (\d+)\.\.(\d+), got (\d+)\.\.(\d+)", summary)
    if unexpected:
        detail = f"asked for bytes {unexpected[1]}..{unexpected[2]}, the server sent {unexpected[3]}..{unexpected[4]}"
    elif "IncompleteBody" in text or (http_kind and http_kind[1] in ("Interrupted", "Body")):
        detail = "the body was cut short"
    transient = timed_out or unexpected or "reset" in detail.lower() or detail == "the body was cut short"
    return (Transient if transient else RemoteReadError)(
        f"{name}: request {reason} ({detail}) after the configured retries. Check the network, or raise "
        "storage_options={'timeout': seconds, 'retries': n}."
    )
