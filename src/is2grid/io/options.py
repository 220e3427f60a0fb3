"""The fetch options (``storage_options``) the engines understand, parsed and checked once."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any


@dataclasses.dataclass(frozen=True)
class FetchOptions:
    """The ``storage_options`` the engine understands.

    ``timeout``: seconds one request may take from connecting to the last byte (an overall
    deadline, not per socket read); ``connect_timeout``: seconds to connect; ``retries``: attempts
    after the first for 5xx, throttling, resets and timeouts, with exponential backoff from
    ``backoff`` seconds; ``coalesce``: ranges closer than this many bytes are fetched as one;
    ``endpoint_url``/``region``: an S3-compatible endpoint (plain HTTP only if the endpoint says
    so); ``read_ahead``: when one variable is read, fetch the others of the Dataset in the same
    requests (default: remote only); ``allow_hosts``: more hosts that may receive the token;
    ``access``: for earthaccess granules, "direct" (s3://), "external" (https://) or "auto";
    ``ca_bundle``: a PEM file of extra trusted certificates (default: ``REQUESTS_CA_BUNDLE`` or
    ``SSL_CERT_FILE`` when set); ``dmrpp``: read the granule's structure from its DMR++ sidecar
    (``<granule>.dmrpp`` beside it, as NASA's Earthdata Cloud keeps them): None (default) looks for one
    beside remote granules and reads the HDF5 header where there is none, True requires it (local files
    too), False never looks.
    """

    timeout: float = 60.0
    connect_timeout: float = 10.0
    retries: int = 4
    backoff: float = 0.1
    coalesce: int = 64 * 1024
    endpoint_url: str | None = None
    region: str = "us-west-2"
    read_ahead: bool | None = None
    allow_hosts: tuple[str, ...] = ()
    access: str = "auto"
    ca_bundle: str | None = None
    dmrpp: bool | None = None

    @classmethod
    def parse(cls, options: Mapping[str, Any] | None) -> tuple[FetchOptions, Any]:
        """Split ``storage_options`` into FetchOptions and the credentials it may carry."""
        options = dict(options or {})
        credentials = None
        for key in ("credentials", "token", "auth"):
            if key in options:
                credentials = options.pop(key)
        if "key" in options or "secret" in options:  # fsspec/s3fs spelling
            credentials = {
                "aws_access_key_id": options.pop("key", None),
                "aws_secret_access_key": options.pop("secret", None),
                "aws_session_token": options.pop("session_token", None),
            }
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(options) - names)
        if unknown:
            raise ValueError(
                f"storage_options: unknown key(s) {unknown}. Known: "
                f"{sorted(names | {'credentials', 'token', 'auth', 'key', 'secret', 'session_token'})}."
            )
        if "allow_hosts" in options:
            options["allow_hosts"] = tuple(options["allow_hosts"])
        made = cls(**options)
        for name in ("timeout", "connect_timeout"):
            if not getattr(made, name) > 0:
                raise ValueError(
                    f"storage_options[{name!r}]={getattr(made, name)!r}: give a positive number of seconds."
                )
        if made.dmrpp not in (None, True, False):
            raise ValueError(
                f"storage_options['dmrpp']={made.dmrpp!r}: give None (use a sidecar beside remote granules when there "
                "is one), True (require it) or False (never look)."
            )
        if int(made.retries) != made.retries or made.retries < 0:
            raise ValueError(f"storage_options['retries']={made.retries!r}: give a whole number >= 0.")
        return made, credentials
