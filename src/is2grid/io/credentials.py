"""Credentials for remote granules, kept out of every repr, message, attribute and pickle.

One :class:`Credentials` object carries whatever a user has: an Earthdata Login token (HTTPS), an
``earthaccess.Auth``, a static S3 credentials dict, or a provider that returns fresh S3 credentials
when the old ones expire (NSIDC's last one hour). Its ``repr`` never shows a secret; pickled, it
travels as an opaque key that is resolved in the receiving process (see :func:`Credentials.__reduce__`).
"""

from __future__ import annotations

import datetime as _dt
import os
import threading
import uuid
import weakref
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

__all__ = ["EARTHDATA_HOSTS", "NSIDC_S3_CREDENTIALS", "Credentials", "EarthdataS3", "as_credentials", "redact_url"]

#: NSIDC's endpoint for temporary S3 credentials (us-west-2), given an Earthdata Login token.
NSIDC_S3_CREDENTIALS = "https://data.nsidc.earthdatacloud.nasa.gov/s3credentials"

#: Hosts that may receive an Earthdata Login token (suffix match, HTTPS only). Extend it for another DAAC.
EARTHDATA_HOSTS: list[str] = ["earthdata.nasa.gov", "earthdatacloud.nasa.gov", "nasa.gov"]

#: Credentials alive in this process, by key (a pickle carries only the key); _PINNED holds those
#: registered on dask workers, which no user object keeps alive there.
_REGISTRY: weakref.WeakValueDictionary[str, Credentials] = weakref.WeakValueDictionary()
_PINNED: dict[str, Credentials] = {}
_REGISTRY_LOCK = threading.Lock()

S3Provider = Callable[[], Mapping[str, Any]]


class Credentials:
    """Secrets for one data provider, never shown.

    Parameters
    ----------
    token : str, optional
        An Earthdata Login bearer token, sent only over HTTPS to :data:`EARTHDATA_HOSTS` (and to
        hosts in ``allow_hosts``).
    s3 : dict or callable, optional
        Static S3 credentials (``aws_access_key_id``/``access_key_id``, ``aws_secret_access_key``/
        ``secret_access_key``, ``aws_session_token``/``token``), or a callable returning such a dict,
        optionally with ``expires_at`` (a timezone-aware datetime or ISO string). A callable is asked
        again shortly before the credentials expire.
    allow_hosts : list of str, optional
        More host names (suffix match) that may receive the token, e.g. a test server.

    Examples
    --------
    >>> c = Credentials(token="abc.def")
    >>> c
    Credentials(token=***)
    >>> "abc" in repr(c) or "abc" in str(c)
    False
    """

    def __init__(
        self,
        *,
        token: str | None = None,
        s3: Mapping[str, Any] | S3Provider | None = None,
        allow_hosts: list[str] | tuple[str, ...] = (),
        query: str | None = None,
        userinfo: str | None = None,
        _key: str | None = None,
    ):
        self._token = token
        self._s3 = dict(s3) if isinstance(s3, Mapping) else s3
        self._query = query
        self._userinfo = userinfo
        self.allow_hosts = tuple(allow_hosts)
        self.key = _key or uuid.uuid4().hex
        with _REGISTRY_LOCK:
            _REGISTRY.setdefault(self.key, self)

    def __repr__(self) -> str:
        parts = []
        if self._token is not None:
            parts.append("token=***")
        if self._s3 is not None:
            parts.append("s3=<provider>" if callable(self._s3) else "s3=***")
        if self._query is not None:
            parts.append("query=***")
        if self._userinfo is not None:
            parts.append("userinfo=***")
        return f"Credentials({', '.join(parts)})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Credentials) and other.key == self.key

    def __hash__(self) -> int:
        return hash(self.key)

    def __reduce__(self):
        # a pickle holds the key only; the receiving process resolves it (same process: the object
        # itself; a dask worker: what was registered there by is2grid.workflow, or the environment)
        return (_resolve, (self.key,))

    def with_url_secrets(self, query: str | None, userinfo: str | None) -> Credentials:
        """A copy that also holds a URL's query string (pre-signed URLs) and user-info."""
        return Credentials(token=self._token, s3=self._s3, allow_hosts=self.allow_hosts, query=query, userinfo=userinfo)

    @property
    def query(self) -> str | None:
        """The query string of a pre-signed URL, if any."""
        return self._query

    @property
    def userinfo(self) -> str | None:
        """``user:password`` from a URL, if any."""
        return self._userinfo

    def portable(self) -> _Portable:
        """A copy that pickles with its secrets, to install on dask workers (``client.run(register, ...)``)."""
        return _Portable(self)

    @property
    def has_token(self) -> bool:
        """Whether a bearer token is held."""
        return self._token is not None

    def token_for(self, url: str, extra_hosts: tuple[str, ...] = ()) -> str | None:
        """The bearer token if ``url`` may receive it (HTTPS to an allowed host), else None.

        Examples
        --------
        >>> c = Credentials(token="t")
        >>> c.token_for("https://data.nsidc.earthdatacloud.nasa.gov/x.h5"), c.token_for("http://example.org/x.h5")
        ('t', None)
        """
        if self._token is None:
            return None
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        allowed = (*EARTHDATA_HOSTS, *self.allow_hosts, *extra_hosts)
        if parts.scheme != "https" or not any(host == h or host.endswith("." + h) for h in allowed):
            return None
        return self._token

    def s3_provider(self) -> Callable[[], dict[str, Any]] | None:
        """An obstore credential provider (a callable giving ``access_key_id``... ``expires_at``)."""
        if self._s3 is None:
            return None
        source = self._s3

        def provide() -> dict[str, Any]:
            raw = dict(source() if callable(source) else source)
            return _obstore_s3(raw)

        return provide

    def s3_endpoint(self) -> str | None:
        """The S3 endpoint URL of static credentials that name one (a test server, another region)."""
        if isinstance(self._s3, dict):
            return self._s3.get("endpoint_url")
        return None


def _resolve(key: str) -> Credentials:
    with _REGISTRY_LOCK:
        found = _REGISTRY.get(key) or _PINNED.get(key)
    if found is not None:
        return found
    return Credentials(_key=key, **_from_environment())


class _Portable:
    """Carries a Credentials object's secrets across a pickle, on purpose (only to dask workers)."""

    def __init__(self, credentials: Credentials):
        self.credentials = credentials

    def __repr__(self) -> str:
        return f"portable {self.credentials!r}"

    def __reduce__(self):
        c = self.credentials
        return (_rebuild, (c.key, c._token, c._s3, c.allow_hosts, c._query, c._userinfo))


def _rebuild(key: str, token: Any, s3: Any, allow_hosts: tuple[str, ...], query: Any, userinfo: Any) -> Credentials:
    return Credentials(token=token, s3=s3, allow_hosts=allow_hosts, query=query, userinfo=userinfo, _key=key)


def register(credentials: Credentials | _Portable) -> None:
    """Make ``credentials`` resolvable by key in this process (used on dask workers)."""
    if isinstance(credentials, _Portable):
        credentials = credentials.credentials
    with _REGISTRY_LOCK:
        _PINNED[credentials.key] = credentials


def _from_environment() -> dict[str, Any]:
    found: dict[str, Any] = {}
    if os.environ.get("EARTHDATA_TOKEN"):
        found["token"] = os.environ["EARTHDATA_TOKEN"]
    if os.environ.get("AWS_ACCESS_KEY_ID") and os.environ.get("AWS_SECRET_ACCESS_KEY"):
        found["s3"] = {
            "aws_access_key_id": os.environ["AWS_ACCESS_KEY_ID"],
            "aws_secret_access_key": os.environ["AWS_SECRET_ACCESS_KEY"],
            "aws_session_token": os.environ.get("AWS_SESSION_TOKEN"),
        }
    return found


def _obstore_s3(raw: Mapping[str, Any]) -> dict[str, Any]:
    def pick(*names: str) -> Any:
        return next((raw[n] for n in names if raw.get(n) is not None), None)

    key_id = pick("access_key_id", "aws_access_key_id", "accessKeyId")
    secret = pick("secret_access_key", "aws_secret_access_key", "secretAccessKey")
    if not key_id or not secret:
        raise ValueError(
            "S3 credentials need an access key id and a secret access key (aws_access_key_id, "
            "aws_secret_access_key, and for NSIDC's temporary credentials aws_session_token); got keys "
            f"{sorted(raw)}. earthaccess.get_s3_credentials('NSIDC') gives all three."
        )
    expires = pick("expires_at", "expiration", "Expiration")
    if isinstance(expires, str):
        expires = _dt.datetime.fromisoformat(expires.replace("Z", "+00:00").replace(" ", "T"))
    if isinstance(expires, _dt.datetime) and expires.tzinfo is None:
        expires = expires.replace(tzinfo=_dt.UTC)
    return {
        "access_key_id": key_id,
        "secret_access_key": secret,
        "token": pick("token", "aws_session_token", "session_token", "sessionToken"),
        "expires_at": expires,
    }


def as_credentials(value: Any, url: str | None = None) -> Credentials | None:
    """Turn what a user passes as ``credentials`` into a :class:`Credentials` (or None).

    Accepts None (then ``EARTHDATA_TOKEN`` for HTTPS), a token string or an ``earthaccess.Auth`` (the
    token for HTTPS; for ``s3://`` the temporary S3 credentials NSIDC gives for it, refreshed at their
    stated expiry by obstore's Earthdata credential provider: :class:`EarthdataS3`), a dict of S3 keys,
    a callable S3 provider, or a :class:`Credentials`.

    Examples
    --------
    >>> as_credentials("tok")
    Credentials(token=***, s3=<provider>)
    >>> as_credentials({"aws_access_key_id": "A", "aws_secret_access_key": "B"})
    Credentials(s3=***)
    """
    if value is None:
        token = os.environ.get("EARTHDATA_TOKEN")
        return Credentials(token=token) if token else None
    if isinstance(value, Credentials):
        return value
    if isinstance(value, str):  # HTTPS with the token; s3:// with the S3 credentials NSIDC gives for it
        return Credentials(token=value, s3=EarthdataS3(value))
    if isinstance(value, tuple) and all(isinstance(x, tuple) and len(x) == 2 for x in value):
        value = dict(value)
    if isinstance(value, Mapping):
        return Credentials(s3=value)
    if _is_earthaccess_auth(value):
        return _from_earthaccess(value, url)
    if callable(value):
        return Credentials(s3=value)
    raise TypeError(
        f"credentials of type {type(value).__name__} are not understood. Pass an Earthdata Login token "
        "(str), an earthaccess.Auth, a dict of S3 keys, a callable returning S3 keys, or "
        "is2grid.Credentials."
    )


def _is_earthaccess_auth(value: Any) -> bool:
    return type(value).__name__ == "Auth" and type(value).__module__.startswith("earthaccess")


def _from_earthaccess(auth: Any, url: str | None) -> Credentials:
    token = (getattr(auth, "token", None) or {}).get("access_token")
    if token:
        return Credentials(token=token, s3=EarthdataS3(token))

    def nsidc_s3() -> dict[str, Any]:  # an Auth without a token: earthaccess asks with its own session
        raw = dict(auth.get_s3_credentials(daac="NSIDC"))
        raw.setdefault("expires_at", _dt.datetime.now(_dt.UTC) + _dt.timedelta(minutes=50))
        return raw

    return Credentials(s3=nsidc_s3)


class EarthdataS3:
    """Temporary S3 credentials from a NASA DAAC's ``s3credentials`` endpoint, refreshed as they expire.

    A thin, picklable wrapper of obstore's ``NasaEarthdataCredentialProvider``: each answer carries
    the endpoint's own expiry (NSIDC's: one hour), so obstore asks again just before it, however long
    the run. Made from an ``earthaccess.Auth`` or a token passed as ``credentials``.

    Parameters
    ----------
    token : str
        An Earthdata Login bearer token.
    url : str
        The DAAC's endpoint (default :data:`NSIDC_S3_CREDENTIALS`).

    Examples
    --------
    >>> EarthdataS3("secret-token")
    EarthdataS3(https://data.nsidc.earthdatacloud.nasa.gov/s3credentials, token=***)
    """

    def __init__(self, token: str, url: str = NSIDC_S3_CREDENTIALS):
        self.url = url
        self._token = token
        self._provider: Any = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"EarthdataS3({self.url}, token=***)"

    def __reduce__(self):
        return (EarthdataS3, (self._token, self.url))

    def __call__(self) -> dict[str, Any]:
        with self._lock:
            if self._provider is None:
                from obstore.auth.earthdata import NasaEarthdataCredentialProvider

                self._provider = NasaEarthdataCredentialProvider(self.url, auth=self._token)
            return dict(self._provider())


def split_url_secrets(url: str) -> tuple[str, str | None, str | None]:
    """``(url without secrets, query string, user-info)``; the last two None when absent.

    Examples
    --------
    >>> split_url_secrets("https://u:p@host.org/x.h5?sig=1")
    ('https://host.org/x.h5', 'sig=1', 'u:p')
    """
    parts = urlsplit(url)
    if not parts.scheme or len(parts.scheme) == 1:
        return url, None, None
    userinfo = parts.netloc.rsplit("@", 1)[0] if "@" in parts.netloc else None
    return redact_url(url), parts.query or None, userinfo


def redact_url(url: str) -> str:
    """``url`` without user-info, query string and fragment, which may hold secrets.

    Examples
    --------
    >>> redact_url("https://user:pw@host.org/a/b.h5?X-Amz-Signature=abc#f")
    'https://host.org/a/b.h5'
    >>> redact_url("/data/granule.h5")
    '/data/granule.h5'
    """
    try:
        parts = urlsplit(url)
        if not parts.scheme or len(parts.scheme) == 1:
            return url
        netloc = parts.hostname or ""
        if parts.port:
            netloc += f":{parts.port}"
    except ValueError:  # not a URL that parses: keep what precedes any user-info or query
        head = url.split("?", 1)[0].split("#", 1)[0]
        scheme, _, rest = head.partition("://")
        return f"{scheme}://{rest.rsplit('@', 1)[-1]}" if rest else head
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
