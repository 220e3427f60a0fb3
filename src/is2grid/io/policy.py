"""Retry and error policy of remote reads: client options, and remote failures turned into is2grid errors."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
import re
import time
from collections.abc import Callable
from typing import Any

from is2grid import _turns
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


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """The one retry policy of every remote read, made from the fetch options.

    Each layer retries what it sees and the others cannot, from these same numbers:

    - obstore (``s3://``, ``https://``): 5xx, 429 and throttling, connection errors and timeouts,
      through :meth:`obstore` (its ``retry_config``), stopping retries :attr:`budget` seconds after
      a request's first try;
    - urllib3 on the ``requests`` path (pre-signed URLs, forked children): the same failures, through
      :meth:`urllib3` (a ``urllib3.util.Retry``), the whole request bounded by the same budget;
    - is2grid's own loop (:meth:`retrying`), only for what neither sees, because it is wrong after the
      headers came: a body cut short or reset, a range other than asked. It starts no try after the
      budget, counted from the read's first try.

    Parameters
    ----------
    retries : int
        Tries after the first.
    backoff : float
        Seconds before the first retry, doubling after each, at most ``max_backoff``.
    timeout : float
        Seconds one request may take, connect to last byte.
    connect_timeout : float
        Seconds to connect.
    max_backoff : float
        Longest wait between tries.

    Examples
    --------
    >>> policy = RetryPolicy.of(FetchOptions())
    >>> policy.budget, policy.worst_case
    (301.5, 663.0)
    """

    retries: int = 4
    backoff: float = 0.1
    timeout: float = 60.0
    connect_timeout: float = 10.0
    max_backoff: float = 5.0

    @classmethod
    def of(cls, options: FetchOptions) -> RetryPolicy:
        return cls(int(options.retries), float(options.backoff), float(options.timeout), float(options.connect_timeout))

    def wait(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (0 for the first)."""
        return min(self.backoff * 2**attempt, self.max_backoff)

    @property
    def budget(self) -> float:
        """Seconds every try of one request and the waits between take at most: no retry starts after."""
        return (self.retries + 1) * self.timeout + sum(self.wait(i) for i in range(self.retries))

    @property
    def worst_case(self) -> float:
        """Seconds one read (a batch of ranges) takes at most before it fails.

        The own loop starts its last try before :attr:`budget`; that try's request may itself be
        retried by obstore or urllib3 for another budget, and its last attempt take ``timeout``.
        """
        return 2 * self.budget + self.timeout

    def obstore(self) -> dict[str, Any]:
        """The ``retry_config`` of obstore's stores."""
        return {
            "max_retries": self.retries,
            "backoff": {
                "init_backoff": dt.timedelta(seconds=self.backoff),
                "max_backoff": dt.timedelta(seconds=self.max_backoff),
                "base": 2,
            },
            "retry_timeout": dt.timedelta(seconds=self.budget),
        }

    def urllib3(self) -> Any:
        """The ``urllib3.util.Retry`` of the ``requests`` path."""
        from urllib3.util import Retry

        return Retry(
            total=self.retries,
            connect=self.retries,
            read=self.retries,
            status=self.retries,
            other=0,
            backoff_factor=self.backoff,
            backoff_max=self.max_backoff,
            status_forcelist=(429, 500, 502, 503, 504),
            allowed_methods=frozenset({"GET", "HEAD"}),
            respect_retry_after_header=True,
            raise_on_status=False,
        )

    def retrying(self, fetch: Callable[[list[int], list[int]], list], starts: list[int], stops: list[int]) -> list:
        """``fetch(starts, stops)``, retried on :class:`Transient` failures (what obstore and urllib3 do not see).

        A failed batch is retried as two halves, so one bad request does not use up the others' tries.
        """
        deadline = time.monotonic() + self.budget

        def attempt(a: list[int], b: list[int], number: int) -> list:
            try:
                return fetch(a, b)
            except Transient as err:
                if number >= self.retries or time.monotonic() + self.wait(number) > deadline:
                    raise RemoteReadError(str(err)) from None
                time.sleep(self.wait(number))
                if len(a) == 1:
                    return attempt(a, b, number + 1)
                mid = len(a) // 2
                return attempt(a[:mid], b[:mid], number + 1) + attempt(a[mid:], b[mid:], number + 1)

        with _turns.waiting():  # a granule waiting for bytes lets the others parse meanwhile
            return attempt(list(starts), list(stops), 0)

    async def retrying_async(self, fetch: Callable[[list[int], list[int]], Any], starts: list[int], stops: list[int]):
        """:meth:`retrying` for asyncio: the halves of a failed batch are retried at once."""
        import asyncio

        deadline = time.monotonic() + self.budget

        async def attempt(a: list[int], b: list[int], number: int) -> list:
            try:
                return await fetch(a, b)
            except Transient as err:
                if number >= self.retries or time.monotonic() + self.wait(number) > deadline:
                    raise RemoteReadError(str(err)) from None
                await asyncio.sleep(self.wait(number))
                if len(a) == 1:
                    return await attempt(a, b, number + 1)
                mid = len(a) // 2
                halves = await asyncio.gather(
                    attempt(a[:mid], b[:mid], number + 1), attempt(a[mid:], b[mid:], number + 1)
                )
                return halves[0] + halves[1]

        return await attempt(list(starts), list(stops), 0)


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
    """A failure worth another try that obstore and urllib3 do not retry: a body cut short or reset, a wrong range."""


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

    obstore's typed exceptions decide first (not found, unauthenticated, permission denied). The rest
    of its failures (HTTP statuses, timeouts, cut bodies, TLS) share one generic class in obstore 0.12,
    so the text is read as a documented fallback: the HTTP status, S3's ``<Code>``, the error kind.
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
    # obstore retried timeouts, 5xx and connection errors itself; what it cannot see is retried once more here
    transient = not timed_out and (unexpected or "reset" in detail.lower() or detail == "the body was cut short")
    return (Transient if transient else RemoteReadError)(
        f"{name}: request {reason} ({detail}) after the configured retries. Check the network, or raise "
        "storage_options={'timeout': seconds, 'retries': n}."
    )
