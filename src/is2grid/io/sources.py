"""Fetching byte ranges of a granule: local files, ``s3://``, ``https://`` and Python file objects.

Everything remote goes through obstore (Rust): ranges closer than ``coalesce`` bytes are merged,
and all the requests of a read run at once, each with an overall timeout, retried as one
:class:`is2grid.io.policy.RetryPolicy` says (5xx, throttling, resets, timeouts, cut-short bodies).
Every answer is checked for length before anyone decodes it, and failures become
:mod:`is2grid.errors` exceptions that name the granule without its secrets.
"""

from __future__ import annotations

import abc
import contextlib
import os
import re
import stat
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

from is2grid import _turns
from is2grid.errors import (
    AuthenticationError,
    CorruptGranuleError,
    GranuleError,
    GranuleNotFoundError,
    Is2gridWarning,
    NotHDF5Error,
    RemoteReadError,
    UnsupportedInputError,
)
from is2grid.io.credentials import Credentials, redact_url
from is2grid.io.options import FetchOptions
from is2grid.io.policy import (
    RangeIgnored,
    RetryPolicy,
    Transient,
    ca_bundle,
    client_options,
    hide_query_strings_in,
    status_error,
    translated,
)

SUPPORTED = "a local path, file://, s3://, https:// (http:// for test servers), an earthaccess granule or a file object"


HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


#: Remote granules are opened with one GET of this many bytes: size, signature, superblock, root group.
HEAD_BYTES = 64 * 1024


def describe(source: Any) -> str:
    """A name for messages and attributes: the URL without secrets, or the file object's name."""
    if isinstance(source, str | os.PathLike):
        return redact_url(os.fspath(source))
    name = getattr(source, "path", None) or getattr(source, "full_name", None) or getattr(source, "name", None)
    return redact_url(str(name)) if name else f"<{type(source).__name__}>"


class ByteSource(abc.ABC):
    """Ranges of one object. ``read`` returns exactly the bytes asked for, or raises."""

    name: str

    @abc.abstractmethod
    def size(self) -> int:
        """The object's size in bytes."""

    @abc.abstractmethod
    def read(self, starts: Sequence[int], stops: Sequence[int]) -> list[memoryview]:
        """Bytes ``starts[i]:stops[i]`` for every i, each checked for length."""

    async def read_async(self, starts: Sequence[int], stops: Sequence[int]) -> list[memoryview]:
        import asyncio

        return await asyncio.to_thread(self.read, starts, stops)

    def sibling(self, suffix: str) -> bytes | None:
        """The whole object named as this one plus ``suffix`` (a sidecar), or None where there is none."""
        return None

    def release(self) -> None:  # noqa: B027 (a no-op unless the source maps memory)
        """Give back memory held for ranges already read."""

    def close(self) -> None:  # noqa: B027  (most sources hold nothing to release)
        """Release what the source holds (a file descriptor); remote clients need nothing."""

    def _checked(self, parts: Sequence[Any], starts: Sequence[int], stops: Sequence[int]) -> list[memoryview]:
        out = [memoryview(p).cast("B") if not isinstance(p, memoryview) else p for p in parts]
        for view, a, b in zip(out, starts, stops, strict=True):
            if len(view) != b - a:
                raise Transient(
                    f"{self.name}: asked for bytes {a}-{b - 1} ({b - a} bytes) and got {len(view)}. The transfer was "
                    "cut short or the server answered another range; nothing was decoded. Try again; if it "
                    "persists, download the granule."
                )
        return out


class ObjectStoreSource(ByteSource):
    """One object of an obstore store (S3Store or HTTPStore)."""

    def __init__(self, store: Any, path: str, name: str, options: FetchOptions, size: int | None = None):
        _OBSTORE["used"] = True
        self.pid = os.getpid()
        self.store, self.path, self.name, self.options = store, path, name, options
        self._size = size
        self._whole: Any = None
        self._head = memoryview(b"")
        self._lock = threading.Lock()

    def size(self) -> int:
        if self._size is None:
            self._first_bytes()
        return self._size  # type: ignore[return-value]

    def _first_bytes(self, n: int = HEAD_BYTES) -> None:
        """One GET for the first ``n`` bytes gives the object's size too (no HEAD round trip)."""
        import obstore

        def fetch(starts: list[int], stops: list[int]) -> list[memoryview]:
            with translated(self.name):
                result = obstore.get(self.store, self.path, options={"range": (0, n)})
                size, head = int(result.meta["size"]), memoryview(result.bytes())
            if len(head) != min(n, size):
                raise Transient(f"{self.name}: asked for the first {n} bytes and got {len(head)}.")
            self._size, self._head = size, head
            return [head]

        try:
            RetryPolicy.of(self.options).retrying(fetch, [0], [n])
        except RangeIgnored:
            self._read_whole()

    def read(self, starts: Sequence[int], stops: Sequence[int]) -> list[memoryview]:
        import obstore

        if not starts:
            return []
        if self._whole is not None:
            return self._checked([self._whole[a:b] for a, b in zip(starts, stops, strict=True)], starts, stops)
        if all(b <= len(self._head) for b in stops):
            return self._checked([self._head[a:b] for a, b in zip(starts, stops, strict=True)], starts, stops)

        def fetch(a: Sequence[int], b: Sequence[int]) -> list[memoryview]:
            with translated(self.name):
                parts = obstore.get_ranges(
                    self.store, self.path, starts=list(a), ends=list(b), coalesce=self.options.coalesce
                )
            return self._checked(parts, a, b)

        policy = RetryPolicy.of(self.options)

        def batch(indices: list[int]) -> list[memoryview]:
            return policy.retrying(fetch, [starts[i] for i in indices], [stops[i] for i in indices])

        groups = _batches(starts, stops, self.options.coalesce)
        try:
            if len(groups) == 1:
                return _in_order(groups, [batch(groups[0])])
            from concurrent.futures import ThreadPoolExecutor

            with _turns.waiting(), ThreadPoolExecutor(len(groups), thread_name_prefix="is2grid-fetch") as pool:
                return _in_order(groups, list(pool.map(batch, groups)))
        except RangeIgnored:
            self._read_whole()
            return self.read(starts, stops)

    async def read_async(self, starts: Sequence[int], stops: Sequence[int]) -> list[memoryview]:
        import asyncio

        import obstore

        if not starts or self._whole is not None or all(b <= len(self._head) for b in stops):
            return self.read(starts, stops)

        async def fetch(a: list[int], b: list[int]) -> list[memoryview]:
            with translated(self.name):
                parts = await obstore.get_ranges_async(
                    self.store, self.path, starts=list(a), ends=list(b), coalesce=self.options.coalesce
                )
            return self._checked(parts, a, b)

        policy = RetryPolicy.of(self.options)
        groups = _batches(starts, stops, self.options.coalesce)
        try:
            parts = await asyncio.gather(
                *(policy.retrying_async(fetch, [starts[i] for i in g], [stops[i] for i in g]) for g in groups)
            )
            return _in_order(groups, parts)
        except RangeIgnored:
            await asyncio.to_thread(self._read_whole)
            return self.read(starts, stops)

    def sibling(self, suffix: str) -> bytes | None:
        import obstore

        name = self.name + suffix

        def fetch(starts: Sequence[int], stops: Sequence[int]) -> list[memoryview]:
            with translated(name):
                return [memoryview(obstore.get(self.store, self.path + suffix).bytes())]

        try:
            return bytes(RetryPolicy.of(self.options).retrying(fetch, [0], [0])[0])
        except GranuleNotFoundError:
            return None

    def _read_whole(self) -> None:
        import obstore

        with self._lock:
            if self._whole is None:
                with translated(self.name), _turns.waiting():
                    whole = memoryview(obstore.get(self.store, self.path).bytes())
                _refuse_web_page(whole, self.name)
                warnings.warn(
                    f"{self.name}: the server ignores HTTP Range requests, so the whole granule is downloaded once "
                    "and kept in memory. Use a server or URL that supports ranges (NSIDC's do) to read only what "
                    "you need.",
                    Is2gridWarning,
                    stacklevel=2,
                )
                self._whole, self._size = whole, len(whole)


#: Requests one ``obstore.get_ranges`` call runs at once (object_store's ``OBJECT_STORE_COALESCE_PARALLEL``).
OBSTORE_PARALLEL = 10


def _batches(
    starts: Sequence[int], stops: Sequence[int], gap: int, per_batch: int = OBSTORE_PARALLEL
) -> list[list[int]]:
    """Indices of the ranges in groups that coalesce to at most ``per_batch`` requests each.

    obstore merges ranges closer than ``gap`` and runs ten requests of one call at once, so a call
    that coalesces to more waits a whole round trip for the rest; groups are fetched side by side.

    Examples
    --------
    >>> _batches([0, 10, 100, 300], [10, 20, 200, 400], gap=50, per_batch=2)
    [[0, 1, 2], [3]]
    """
    order = sorted(range(len(starts)), key=lambda i: starts[i])
    groups: list[list[int]] = [[]]
    requests, end = 0, None
    for i in order:
        if end is None or starts[i] > end + gap:
            if requests == per_batch:
                groups.append([])
                requests = 0
            requests += 1
            end = stops[i]
        else:
            end = max(end, stops[i])
        groups[-1].append(i)
    return groups


def _in_order(groups: list[list[int]], parts: list[list[memoryview]]) -> list[memoryview]:
    out: list[Any] = [None] * sum(len(g) for g in groups)
    for group, blobs in zip(groups, parts, strict=True):
        for i, blob in zip(group, blobs, strict=True):
            out[i] = blob
    return out


def _refuse_web_page(head: Any, name: str) -> None:
    """A web page where a granule should be is, in practice, a login page: say so."""
    start = bytes(head[:512]).lstrip().lower()
    if start.startswith((b"<!doctype html", b"<html", b"<?xml", b"<head")):
        raise AuthenticationError(
            f"{name}: the server answered with a web page (an Earthdata Login page?), not the granule. Pass an "
            "Earthdata Login token: credentials=earthaccess.login() or a token string, or set EARTHDATA_TOKEN."
        )


class LocalFileSource(ByteSource):
    """A local file, read with ``pread`` into new buffers: safe from many threads, and from the file changing.

    A file that is cut short while it is read (a download still being written, a copy overwritten)
    gives a short read, reported as :class:`~is2grid.CorruptGranuleError`. Mapping the file in
    memory instead was measured 6 % faster on a whole load, but a page past a new end of the file
    kills the process with SIGBUS when the decode threads touch it, and no check made before they do
    can rule that out. Local reads bypass obstore: its Rust runtime does not survive ``fork``.
    """

    def __init__(self, path: str, name: str, size: int):
        self.path, self.name, self._size = path, name, size
        self._fd: int | None = None
        self._pid = -1
        self._lock = threading.Lock()

    def __getstate__(self):
        return {"path": self.path, "name": self.name, "size": self._size}

    def __setstate__(self, state):
        self.__init__(state["path"], state["name"], state["size"])

    def size(self) -> int:
        return self._size

    def _descriptor(self) -> int:
        with self._lock:
            if self._fd is None or self._pid != os.getpid():
                try:
                    self._fd, self._pid = os.open(self.path, os.O_RDONLY), os.getpid()
                except OSError as err:
                    raise GranuleError(f"{self.name}: cannot be read ({err.strerror}).") from None
            return self._fd

    def read(self, starts: Sequence[int], stops: Sequence[int]) -> list[memoryview]:
        """The ranges, each read into a buffer of its own; large reads are shared with a second thread.

        ``pread`` releases the GIL while the kernel copies, so the two halves of a large read (by
        bytes) are copied at once: 8 % faster on a whole load than one thread (benchmarks, table A).
        """
        total = sum(b - a for a, b in zip(starts, stops, strict=True))
        if len(starts) < 2 or total < _SPLIT_READS_FROM:
            return self._read(starts, stops)
        half, mid = 0, len(starts)
        for i, (a, b) in enumerate(zip(starts, stops, strict=True)):
            half += b - a
            if 2 * half >= total:
                mid = i + 1
                break
        second = _read_pool().submit(self._read, starts[mid:], stops[mid:])
        first = self._read(starts[:mid], stops[:mid])
        return first + second.result()

    def _read(self, starts: Sequence[int], stops: Sequence[int]) -> list[memoryview]:
        fd = self._descriptor()
        views = []
        for a, b in zip(starts, stops, strict=True):
            if not 0 <= a <= b <= self._size:
                raise CorruptGranuleError(
                    f"{self.name}: bytes {a}-{b - 1} lie past the end of the file ({self._size} bytes): it is "
                    "truncated or was changed while open. Download the granule again."
                )
            try:
                data = os.pread(fd, b - a, a)
            except OSError as err:
                raise CorruptGranuleError(f"{self.name}: reading bytes {a}-{b - 1} failed ({err.strerror}).") from None
            if len(data) != b - a:
                now = os.fstat(fd).st_size
                raise CorruptGranuleError(
                    f"{self.name}: the file was cut short while open (now {now} of {self._size} bytes). "
                    "Open it again once it is complete."
                )
            views.append(memoryview(data))
        return views

    def sibling(self, suffix: str) -> bytes | None:
        try:
            with open(self.path + suffix, "rb") as file:
                return file.read()
        except FileNotFoundError:
            return None
        except OSError as err:
            raise GranuleError(f"{self.name}{suffix}: cannot be read ({err.strerror}).") from None

    def release(self) -> None:
        """Nothing to give back: every read is a buffer of its own, freed with its last reference."""

    def close(self) -> None:
        with self._lock:
            if self._fd is not None and self._pid == os.getpid():
                os.close(self._fd)
            self._fd = None


class FileObjectSource(ByteSource):
    """A Python file object (fsspec, ``earthaccess.open``): positioned reads under a lock, correct but serial."""

    def __init__(self, fileobj: Any):
        for method in ("read", "seek"):
            if not callable(getattr(fileobj, method, None)):
                raise UnsupportedInputError(
                    f"{type(fileobj).__name__} is not a readable file object (no {method}()). Pass {SUPPORTED}."
                )
        self.fileobj = fileobj
        self.name = describe(fileobj)
        self._lock = threading.Lock()
        self._size: int | None = None

    def size(self) -> int:
        if self._size is None:
            with self._lock:
                here = self.fileobj.tell()
                self._size = int(self.fileobj.seek(0, os.SEEK_END))
                self.fileobj.seek(here)
        return self._size

    def read(self, starts: Sequence[int], stops: Sequence[int]) -> list[memoryview]:
        parts = []
        with _turns.waiting(), self._lock, translated(self.name):  # an fsspec file may be remote
            for a, b in zip(starts, stops, strict=True):
                self.fileobj.seek(a)
                parts.append(self.fileobj.read(b - a))
        return self._checked(parts, starts, stops)

    def __getstate__(self):
        return {"fileobj": self.fileobj}

    def __setstate__(self, state):
        self.__init__(state["fileobj"])


#: obstore's Rust runtime does not survive fork: a child forked after it started must not use it.
_OBSTORE = {"used": False, "forked": False}


def _after_fork_in_child() -> None:
    _OBSTORE["forked"] = _OBSTORE["used"]
    _READ_POOL.clear()  # its thread is the parent's
    _STORES.clear()  # their clients run on the parent's runtime


#: obstore stores kept for the granules that follow (same host or bucket, options and credentials), at most
MAX_STORES = 16
_STORES: OrderedDict[tuple, tuple[Any, Any]] = OrderedDict()
_STORES_LOCK = threading.Lock()


def _shared_store(key: tuple, make: Callable[[], Any], keep: Any = None) -> Any:
    """The store made for ``key`` before, or a new one kept for the next granules.

    Making a store builds an HTTP client (7-13 ms of CPU here), and each client has its own pool of
    connections: sharing it, a month's granules reuse connections (and their TLS sessions) instead of
    opening new ones per granule. ``keep``: an object the key names by ``id`` (credentials), kept alive
    with the store so that the id is not reused while the store is.
    """
    with _STORES_LOCK:
        found = _STORES.get(key)
        if found is not None:
            _STORES.move_to_end(key)
            return found[0]
    store = make()
    with _STORES_LOCK:
        _STORES[key] = (store, keep)
        while len(_STORES) > MAX_STORES:
            _STORES.popitem(last=False)
    return store


def _frozen(value: Any) -> Any:
    """A hashable form of nested options (dicts, lists) for a cache key."""
    if isinstance(value, dict):
        return tuple(sorted((k, _frozen(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return tuple(_frozen(v) for v in value)
    return value


#: local reads of at least this many bytes are split over two threads
_SPLIT_READS_FROM = 4 << 20


_READ_POOL: list[Any] = []


_READ_POOL_LOCK = threading.Lock()


def _read_pool():
    """One helper thread for local reads (made when first needed, again after a fork)."""
    with _READ_POOL_LOCK:
        if not _READ_POOL:
            from concurrent.futures import ThreadPoolExecutor

            _READ_POOL.append(ThreadPoolExecutor(1, thread_name_prefix="is2grid-pread"))
        return _READ_POOL[0]


os.register_at_fork(after_in_child=_after_fork_in_child)


def open_source(target: Any, options: FetchOptions, credentials: Credentials | None) -> ByteSource:
    """A checked ByteSource for a path, URL or file object: it exists and starts like an HDF5 file."""
    return checked(make_source(target, options, credentials))


def make_source(target: Any, options: FetchOptions, credentials: Credentials | None) -> ByteSource:
    """The ByteSource of a path, URL or file object, not yet read from (remote ones: no request made)."""
    if not isinstance(target, str | os.PathLike):
        return FileObjectSource(target)
    kind, location = resolve(target)
    if kind == "file":
        return _local(location)
    if kind == "s3":
        return _s3(location, options, credentials)
    return _http(os.fspath(target), options, credentials)


def checked(source: ByteSource) -> ByteSource:
    """``source``, once its first bytes show that it exists and starts like an HDF5 file."""
    size = source.size()
    head = source.read([0], [min(8, size)])[0] if size else b""
    if size == 0:
        raise NotHDF5Error(f"{source.name}: the file is empty (0 bytes). Download the granule again.")
    if bytes(head) != HDF5_SIGNATURE:
        if (
            isinstance(source, ObjectStoreSource | RequestsSource)
            and type(getattr(source, "store", None)).__name__ != "LocalStore"
        ):
            _refuse_web_page(source.read([0], [min(512, size)])[0], source.name)
        raise NotHDF5Error(f"{source.name}: not an HDF5 file (no HDF5 signature). ICESat-2 granules are HDF5 (.h5).")
    return source


def resolve(path_or_url: str | os.PathLike) -> tuple[str, str]:
    """Return (kind, location) with kind in {"file", "s3", "http"}.

    Examples
    --------
    >>> resolve("s3://nsidc-cumulus-prod-protected/ATLAS/ATL10/006/x.h5")
    ('s3', 'nsidc-cumulus-prod-protected/ATLAS/ATL10/006/x.h5')
    >>> resolve("file:///data/x.h5")
    ('file', '/data/x.h5')
    """
    text = os.fspath(path_or_url)
    if not isinstance(text, str):
        raise UnsupportedInputError(f"expected a str or os.PathLike path, got {type(text).__name__}. Pass {SUPPORTED}.")
    try:
        parsed = urlsplit(text)
        parsed.port  # noqa: B018 (a port out of range raises only when read)
        if parsed.scheme.lower() in ("http", "https", "s3") and parsed.hostname:
            if any(c.isspace() for c in parsed.netloc):
                raise ValueError("a space in the host name")
            parsed.hostname.encode("idna")
    except (ValueError, UnicodeError) as err:
        raise UnsupportedInputError(
            f"{redact_url(text)}: not a valid URL ({err}). Check its host, port and brackets, e.g. "
            "https://host.example/path/granule.h5 or s3://bucket/path/granule.h5."
        ) from None
    scheme = parsed.scheme.lower()
    if scheme == "" or (len(scheme) == 1 and os.name == "nt"):
        return "file", text
    if scheme == "file":
        return "file", parsed.path
    if scheme == "s3":
        return "s3", f"{parsed.netloc}{parsed.path}"
    if scheme in ("http", "https"):
        if not parsed.hostname:
            raise UnsupportedInputError(f"{redact_url(text)}: a URL without a host. Give https://host/path/granule.h5.")
        return "http", text
    raise UnsupportedInputError(f"{redact_url(text)}: unsupported URL scheme {scheme!r}. Pass {SUPPORTED}.")


def _local(location: str) -> ByteSource:
    path = os.path.abspath(location)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise GranuleNotFoundError(
            f"{location}: no such file. Check the path, or download the granule first."
        ) from None
    except OSError as err:
        raise GranuleError(
            f"{location}: cannot be read ({err.strerror}). Check the path and its permissions."
        ) from None
    if stat.S_ISDIR(info.st_mode):
        raise UnsupportedInputError(f"{location}: is a directory, not a granule. Pass the path of an ATL10 .h5 file.")
    if not stat.S_ISREG(info.st_mode):
        raise UnsupportedInputError(
            f"{location}: not a regular file (a pipe or device). Pass the path of an ATL10 .h5 file."
        )
    return LocalFileSource(path, location, info.st_size)


def _s3(location: str, options: FetchOptions, credentials: Credentials | None) -> ByteSource:
    from obstore.store import S3Store

    bucket, _, key = location.partition("/")
    name = f"s3://{location}"
    if _OBSTORE["forked"]:
        raise UnsupportedInputError(
            f"{name}: this process was forked after reading from the cloud, and the S3 client cannot run in such "
            "a child. Start worker processes with 'spawn' or 'forkserver' (multiprocessing.set_start_method('spawn'); "
            "dask's default), or read before forking nothing from the cloud."
        )
    if not bucket or not key:
        raise GranuleError(f"{name}: an S3 URL needs a bucket and a key (s3://bucket/path/granule.h5).")
    endpoint = options.endpoint_url or (credentials.s3_endpoint() if credentials else None)
    endpoint = endpoint or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    provider = credentials.s3_provider() if credentials else None
    config: dict[str, Any] = {"region": options.region}
    if endpoint:
        config.update(endpoint=endpoint, virtual_hosted_style_request=False)
    if provider is None:
        config["skip_signature"] = False
    client = client_options(options, allow_http=bool(endpoint and endpoint.startswith("http://")))
    retry = RetryPolicy.of(options).obstore()
    store = _shared_store(
        ("s3", bucket, _frozen(config), _frozen(client), _frozen(retry), id(credentials) if provider else None),
        lambda: S3Store(
            bucket,
            config=config,  # type: ignore[arg-type]
            client_options=client,  # type: ignore[arg-type]
            retry_config=retry,  # type: ignore[arg-type]
            credential_provider=_checked_provider(provider, f"s3://{bucket}") if provider else None,
        ),
        keep=credentials if provider else None,
    )
    return ObjectStoreSource(store, key, name, options)


def _checked_provider(provider, name: str):
    def call() -> dict[str, Any]:
        try:
            return provider()
        except Exception as err:
            raise AuthenticationError(
                f"{name}: the S3 credential provider failed ({type(err).__name__}). Log in again "
                "(earthaccess.login()) or pass fresh credentials."
            ) from None

    return call


def _http(url: str, options: FetchOptions, credentials: Credentials | None) -> ByteSource:
    from obstore.store import HTTPStore

    parts = urlsplit(url)
    name = redact_url(url)
    base = f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    path = parts.path.lstrip("/")
    client = client_options(options, allow_http=parts.scheme == "http")
    headers = {}
    userinfo = credentials.userinfo if credentials is not None else None
    if userinfo:
        import base64
        from urllib.parse import unquote

        headers["Authorization"] = "Basic " + base64.b64encode(unquote(userinfo).encode()).decode()
    elif credentials is not None:
        token = credentials.token_for(url, extra_hosts=options.allow_hosts)
        if token:
            headers["Authorization"] = f"Bearer {token}"
    query = parts.query or (credentials.query if credentials is not None else None)
    if query or _OBSTORE["forked"]:
        # obstore addresses objects by path and would encode the query (a pre-signed URL needs it
        # verbatim), and it cannot run in a child forked after it started
        suffix = f"?{query}" if query else ""
        return RequestsSource(f"{base}/{parts.path.lstrip('/')}{suffix}", name, options, {} if query else headers)
    if headers:
        client["default_headers"] = headers
    retry = RetryPolicy.of(options).obstore()
    store = _shared_store(
        ("http", base, _frozen(client), _frozen(retry)),
        lambda: HTTPStore.from_url(base, client_options=client, retry_config=retry),  # type: ignore[arg-type]
    )
    return ObjectStoreSource(store, path, name, options)


class RequestsSource(ByteSource):
    """Plain ranged GETs in threads, for what obstore cannot do.

    That is: pre-signed URLs (query strings that are the authorisation) and reads in a child
    forked after obstore started.

    Same guarantees as the obstore path: an overall deadline per request, retries with backoff on
    5xx, 429, resets and short bodies, and every answer checked for its range and length.
    """

    def __init__(self, url: str, name: str, options: FetchOptions, headers: dict[str, str] | None = None):
        self.url, self.name, self.options, self.headers = url, name, options, dict(headers or {})
        self._size: int | None = None
        self._local = threading.local()
        hide_query_strings_in("urllib3.connectionpool")

    def __getstate__(self):
        raise TypeError(f"{self.name}: a granule reader holding secrets is not pickled; pickle the Dataset instead.")

    @property
    def _verify(self) -> str | bool:
        # per request: requests lets REQUESTS_CA_BUNDLE in the environment override a Session's own setting
        return ca_bundle(self.options) or True

    def _session(self):
        if not hasattr(self._local, "session"):
            self._local.session = _deadline_session(RetryPolicy.of(self.options))
        return self._local.session

    def size(self) -> int:
        if self._size is None:
            self._get(0, 1)
        return self._size  # type: ignore[return-value]

    def sibling(self, suffix: str) -> bytes | None:
        import requests

        if "?" in self.url:  # a pre-signed URL signs its own path only
            return None
        name = self.name + suffix
        try:
            reply = self._session().get(
                self.url + suffix,
                headers=self.headers,
                timeout=(self.options.connect_timeout, RetryPolicy.of(self.options).budget),
                verify=self._verify,
            )
        except (requests.RequestException, OSError) as err:
            raise RemoteReadError(f"{name}: request failed ({type(err).__name__}).") from None
        if reply.status_code == 404:
            return None
        if reply.status_code != 200:
            raise status_error(reply.status_code, name)
        return reply.content

    def read(self, starts: Sequence[int], stops: Sequence[int]) -> list[memoryview]:
        from concurrent.futures import ThreadPoolExecutor

        if len(starts) <= 1:
            return [self._get(a, b) for a, b in zip(starts, stops, strict=True)]
        with _turns.waiting(), ThreadPoolExecutor(max_workers=min(10, len(starts))) as pool:
            return list(pool.map(self._get, starts, stops))

    def _get(self, start: int, stop: int) -> memoryview:
        return RetryPolicy.of(self.options).retrying(lambda a, b: [self._get_once(a[0], b[0])], [start], [stop])[0]

    def _get_once(self, start: int, stop: int) -> memoryview:
        import requests

        policy = RetryPolicy.of(self.options)
        timeout = policy.budget  # the GET with urllib3's retries of it; each try's socket reads time out sooner
        with _Deadline(timeout) as deadline:
            try:
                reply = self._session().get(
                    self.url,
                    headers={**self.headers, "Range": f"bytes={start}-{stop - 1}"},
                    timeout=(self.options.connect_timeout, timeout),
                    stream=True,
                    verify=self._verify,
                )
                with reply:
                    if reply.status_code in (429, 500, 502, 503, 504):  # still, after urllib3's retries
                        raise RemoteReadError(
                            f"{self.name}: request failed (HTTP {reply.status_code}) after the configured retries. "
                            "Retry later, or raise storage_options={'retries': n}."
                        )
                    if reply.status_code == 200 and "html" in reply.headers.get("Content-Type", "").lower():
                        _refuse_web_page(reply.raw.read(512) or b"<html", self.name)
                    if reply.status_code != 206:
                        raise status_error(reply.status_code, self.name)
                    found = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+|\*)", reply.headers.get("Content-Range", ""))
                    if not found or int(found[1]) != start:
                        raise Transient(f"{self.name}: asked for bytes from {start}, the server sent another range.")
                    if found[3] != "*":
                        self._size = int(found[3])
                    body = bytearray()
                    for block in reply.iter_content(1 << 16):
                        body += block
            except GranuleError:
                raise
            except requests.exceptions.SSLError as err:
                if "CERTIFICATE_VERIFY_FAILED" not in str(err):
                    raise Transient(f"{self.name}: request failed (TLS: {type(err).__name__}).") from None
                raise RemoteReadError(
                    f"{self.name}: the server's TLS certificate is not trusted. If you trust it, pass its CA as "
                    "storage_options={'ca_bundle': 'ca.pem'} (or set REQUESTS_CA_BUNDLE)."
                ) from None
            except (requests.RequestException, OSError) as err:
                if deadline.expired:
                    raise RemoteReadError(
                        f"{self.name}: request timed out (slower than {timeout:g} s with its retries). Check the "
                        "network, or raise storage_options={'timeout': seconds, 'retries': n}."
                    ) from None
                # a reset or cut-short body (urllib3 retried failures before the headers came)
                raise Transient(
                    f"{self.name}: request failed ({type(err).__name__}) after the configured retries."
                ) from None
        if deadline.expired:
            raise RemoteReadError(f"{self.name}: request timed out (slower than {timeout:g} s with its retries).")
        expected = min(stop, self._size or stop) - start
        if len(body) != expected:
            raise Transient(f"{self.name}: asked for {expected} bytes from {start} and got {len(body)}.")
        return memoryview(bytes(body))


_IN_FLIGHT = threading.local()  # the connection the current thread's request is using (for its deadline)


class _Deadline:
    """An overall deadline for one request on this thread: when it passes, the request's socket is shut.

    urllib3's read timeout counts per socket read, so a server sending a byte now and then never
    trips it. A timer shuts the connection the request is using (header wait or body alike); the
    blocked read then ends, and ``expired`` says why.
    """

    def __init__(self, seconds: float):
        self.seconds, self.expired, self.connection = seconds, False, None
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> _Deadline:
        _IN_FLIGHT.deadline = self
        self._timer.start()
        return self

    def __exit__(self, *exc) -> None:
        self._timer.cancel()
        _IN_FLIGHT.deadline = None

    def _expire(self) -> None:
        import socket

        self.expired = True
        sock = getattr(self.connection, "sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def _deadline_session(policy: RetryPolicy):
    """A requests Session that retries as ``policy`` says, whose connections report to their :class:`_Deadline`."""
    import requests
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

    def reporting(pool_class):
        class Connection(pool_class.ConnectionCls):  # type: ignore[name-defined,misc]
            def request(self, *args, **kwargs):
                deadline = getattr(_IN_FLIGHT, "deadline", None)
                if deadline is not None:
                    deadline.connection = self
                return super().request(*args, **kwargs)

        return type(f"Deadline{pool_class.__name__}", (pool_class,), {"ConnectionCls": Connection})

    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(max_retries=policy.urllib3())
    adapter.poolmanager.pool_classes_by_scheme = {
        "http": reporting(HTTPConnectionPool),
        "https": reporting(HTTPSConnectionPool),
    }
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session
