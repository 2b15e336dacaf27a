"""Build obstore's ``S3Store`` from an :class:`~.s3.S3Config`, so the settings alone decide.

obstore reads every ``AWS_*`` variable itself when a store is built, and some of them win over
what it is given (``AWS_ENDPOINT_URL_S3`` over an explicit endpoint; ``AWS_SESSION_TOKEN`` is
added to explicit keys). Everything the settings say is therefore passed explicitly, and
explicit keys go through a static credential provider that ignores the environment. No
request is made here.
"""

from __future__ import annotations

__all__ = ["build_s3_store", "read_ca_bundle"]

from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from obstore.exceptions import BaseError as ObstoreError
from obstore.store import S3Store

from ..errors import SettingsError
from ..redaction import Redactor, shown_url

if TYPE_CHECKING:
    from obstore.store import ClientConfig, RetryConfig, S3Credential
    from obstore.store import S3Config as ObstoreS3Config

    from .s3 import S3Config

#: What every certificate of a PEM bundle starts with.
_PEM_CERTIFICATE = "-----BEGIN CERTIFICATE-----"


class _StaticCredentials:
    """An obstore credential provider giving one fixed key pair (and token) for good.

    Explicit keys go through this rather than obstore's ``access_key_id`` options: those are
    combined with an ``AWS_SESSION_TOKEN`` found in the environment, and ``store.config``
    would hand the secret back in clear. The repr names the key id only.
    """

    def __init__(self, key_id: str, secret: str, token: str | None) -> None:
        self._credential: S3Credential = {
            "access_key_id": key_id,
            "secret_access_key": secret,
            "token": token,
            "expires_at": None,  # never expires: obstore caches it
        }

    def __call__(self) -> S3Credential:
        return self._credential

    def __repr__(self) -> str:
        return f"_StaticCredentials({self._credential['access_key_id']!r}, ***)"


def read_ca_bundle(path: str) -> str:
    """The PEM text of the CA bundle at ``path`` (obstore takes certificates, not a path)."""
    try:
        text = Path(path).expanduser().read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise SettingsError(f"AWS_CA_BUNDLE: cannot read the CA bundle {path!r}: {reason}") from exc
    if _PEM_CERTIFICATE not in text:
        raise SettingsError(
            f"AWS_CA_BUNDLE: {path!r} is not a PEM CA bundle (no '{_PEM_CERTIFICATE}' in it)"
        )
    return text


def _endpoint(config: S3Config, bucket: str) -> tuple[str, bool]:
    """The endpoint to send requests to, and whether it is virtual-hosted style.

    A configured endpoint (SeaweedFS, MinIO, ...) is used path style (``endpoint/bucket/key``),
    which those servers need. Without one it is AWS's own, spelled out (obstore would build the
    same one, unless a variable of the environment overrode it): virtual-hosted for buckets
    whose name is a valid host label, path style for names with dots (as boto3 does, since the
    ``*.s3`` certificate does not cover them).
    """
    if config.endpoint_url:
        return config.endpoint_url.rstrip("/"), False
    region = config.region_name
    if "." in bucket:
        return f"https://s3.{region}.amazonaws.com", False
    return f"https://{bucket}.s3.{region}.amazonaws.com", True


def build_s3_store(config: S3Config, bucket: str, *, prefix: str = "") -> S3Store:
    """obstore's store for ``bucket`` (keys under ``prefix``), configured from ``config`` only.

    Raises :class:`~factflow_replay_dagster.errors.SettingsError` for a CA bundle that cannot be
    read or is not PEM, or a configuration obstore refuses.
    """
    endpoint, virtual_hosted = _endpoint(config, bucket)
    scheme = urlsplit(endpoint).scheme.lower()
    if scheme not in ("http", "https"):
        raise SettingsError(
            f"AWS_ENDPOINT_URL: {shown_url(endpoint)!r} is not an http:// or https:// URL"
        )
    client: ClientConfig = {
        "allow_http": scheme == "http",  # obstore refuses http:// endpoints otherwise
        "allow_invalid_certificates": False,  # whatever AWS_ALLOW_INVALID_CERTIFICATES says
        "connect_timeout": timedelta(seconds=config.connect_timeout),
        "read_timeout": timedelta(seconds=config.read_timeout),
        "timeout": timedelta(seconds=config.request_timeout),
    }
    if config.ca_bundle:
        client["root_certificate"] = read_ca_bundle(config.ca_bundle)  # added to system roots
    if config.proxy_url:
        client["proxy_url"] = config.proxy_url
    retry: RetryConfig = {
        "max_retries": config.max_attempts - 1,  # obstore counts retries, not attempts
        "retry_timeout": timedelta(seconds=config.retry_timeout),  # its default is 3 minutes
        "backoff": {
            "init_backoff": timedelta(milliseconds=100),
            "max_backoff": timedelta(seconds=15),
            "base": 2,
        },
    }
    s3: ObstoreS3Config = {
        "endpoint": endpoint,
        "aws_endpoint_url_s3": endpoint,  # else AWS_ENDPOINT_URL_S3 in the environment wins
        "region": config.region_name,
        "virtual_hosted_style_request": virtual_hosted,
        "skip_signature": False,
    }
    credentials = None
    if config.aws_access_key_id and config.aws_secret_access_key:
        credentials = _StaticCredentials(
            config.aws_access_key_id, config.aws_secret_access_key, config.aws_session_token
        )
    try:
        return S3Store(
            bucket,
            prefix=prefix.strip("/") or None,
            config=s3,
            client_options=client,
            retry_config=retry,
            credential_provider=credentials,  # None: obstore's own chain
        )
    except (ObstoreError, ValueError) as exc:
        # It may quote configuration values; the key pair is not among them (see above).
        first = Redactor(urls=[endpoint]).scrub(str(exc).split("\n", 1)[0])[:300]
        raise SettingsError(f"cannot configure S3 for bucket {bucket!r}: {first}") from exc
