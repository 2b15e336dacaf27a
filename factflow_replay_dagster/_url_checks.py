"""Settings that are URLs, checked when they are read, never quoted unless they parse.

A malformed URL is refused with its variable's name (a ``SettingsError``, exit code 2)
before anything connects, instead of as the broker library's or the database driver's own
error inside a run. An error quotes a URL only when it parses, and then redacted
(:func:`~factflow_replay_dagster.redaction.shown_url`): ``amqp://guest:s3cret/vhost`` (the
host forgotten) reads the password as a port, and a secret pasted into the wrong variable is
not a URL at all; no redaction can find the password in those.
"""

from __future__ import annotations

__all__ = ["check_amqp_url", "check_database_url", "check_endpoint_url", "check_s3_storage_url"]

from urllib.parse import SplitResult, urlsplit

from .errors import SettingsError
from .redaction import Redactor, shown_url


def _split(variable: str, url: str) -> SplitResult:
    try:
        parts = urlsplit(url)
        _ = parts.port  # a port that is not a number from 0 to 65535 raises here
    except ValueError:
        raise SettingsError(
            f"{variable} does not parse as a URL (a port that is not a number from 0 to "
            "65535, or a '[' that does not close); its value is not shown: it may hold a "
            "password"
        ) from None
    return parts


def check_amqp_url(url: str, *, variable: str = "FACTFLOW_BROKER_URL") -> None:
    """Refuse an ``amqp(s)://`` URL pika would refuse (port, query options), or that does not
    parse, before any connection."""
    _split(variable, url)
    import pika  # only for a broker URL: other settings need no AMQP library

    try:
        pika.URLParameters(url)
    except (ValueError, TypeError, SyntaxError) as exc:  # its checks of options and ssl_options
        reason = Redactor(urls=[url]).scrub(str(exc).split("\n", 1)[0])[:200]
        raise SettingsError(
            f"{variable} is not an AMQP URL pika accepts ({type(exc).__name__}: {reason}): "
            f"{shown_url(url)!r}"
        ) from None


def check_database_url(url: str, *, variable: str = "FACTFLOW_DATABASE_URL") -> None:
    """Refuse a database URL SQLAlchemy cannot parse, or whose dialect and driver it does not
    know (the driver package itself is imported when the store opens:
    :func:`~factflow_replay_dagster.executions.engine.create_store_engine`)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise SettingsError(
            f"{variable} is not a SQLAlchemy URL (dialect+driver://user:password@host/db): "
            f"{shown_url(url)!r}"
        ) from None
    try:
        parsed.get_dialect()
    except ArgumentError:  # NoSuchModuleError: no such dialect or driver
        raise SettingsError(
            f"{variable} names a database dialect or driver SQLAlchemy does not know "
            f"({parsed.drivername!r}): {shown_url(url)!r}"
        ) from None


def check_endpoint_url(url: str, *, variable: str = "AWS_ENDPOINT_URL") -> None:
    """An S3 endpoint is ``http(s)://host[:port]``."""
    parts = _split(variable, url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise SettingsError(f"{variable} is not an http:// or https:// URL: {shown_url(url)!r}")


def check_s3_storage_url(url: str, *, variable: str = "FACTFLOW_STORAGE_URL") -> None:
    """``s3://bucket/prefix`` names a bucket, and no credentials (the AWS variables do)."""
    parts = _split(variable, url)
    if not parts.netloc:
        raise SettingsError(f"{variable} names no S3 bucket: {shown_url(url)!r}")
    if "@" in parts.netloc or ":" in parts.netloc:
        raise SettingsError(
            f"{variable} must name a bucket, without credentials (AWS_ACCESS_KEY_ID and "
            f"AWS_SECRET_ACCESS_KEY give them): {shown_url(url)!r}"
        )
