"""One settings object, read from environment variables, shared by the CLI and ``definitions.py``.

With nothing set, every component is embedded under one local folder (``FACTFLOW_HOME``,
default ``./.factflow``): artefacts in a folder, the execution store in SQLite, the queue in
an embedded SQLite queue. Passwords never appear in ``repr``, logs or errors.
"""

from __future__ import annotations

__all__ = [
    "BrokerKind",
    "Settings",
    "StorageKind",
    "broker_kind",
    "embedded_queue_path",
    "redact_url",
    "s3_location",
    "storage_folder",
    "storage_kind",
]

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from .errors import SettingsError

StorageKind = Literal["file", "s3"]
BrokerKind = Literal["amqp", "embedded"]

_SECRET_QUERY_KEYS = {"password", "passwd", "secret", "token", "sig", "signature"}


def redact_url(url: str) -> str:
    """``url`` with any password (userinfo or query parameter) replaced by ``***``.

    A URL without a secret comes back unchanged (``sqlite:////abs/path`` keeps its slashes).
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    netloc, query = parts.netloc, parts.query
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        if ":" in userinfo:
            netloc = f"{userinfo.split(':', 1)[0]}:***@{host}"
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(k.lower() in _SECRET_QUERY_KEYS for k, _ in pairs):
            query = urlencode(
                [(k, "***" if k.lower() in _SECRET_QUERY_KEYS else v) for k, v in pairs],
                safe="*",
            )
    if (netloc, query) == (parts.netloc, parts.query):
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def storage_kind(url: str) -> StorageKind:
    """``file`` or ``s3``; anything else is a :class:`SettingsError`."""
    scheme = urlsplit(url).scheme
    if scheme == "file":
        return "file"
    if scheme == "s3":
        return "s3"
    raise SettingsError(
        f"a storage URL must be file:///path or s3://bucket/prefix, not {redact_url(url)!r}"
    )


def storage_folder(url: str) -> Path:
    """The folder of a ``file://`` storage URL."""
    parts = urlsplit(url)
    if parts.scheme != "file" or parts.netloc not in ("", "localhost"):
        raise SettingsError(f"not a local file URL: {redact_url(url)!r}")
    return Path(unquote(parts.path))


def s3_location(url: str) -> tuple[str, str]:
    """``(bucket, prefix)`` of an ``s3://bucket/prefix`` storage URL."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc:
        raise SettingsError(f"not an s3://bucket/prefix URL: {redact_url(url)!r}")
    return parts.netloc, parts.path.lstrip("/")


def broker_kind(url: str) -> BrokerKind:
    """``amqp`` for ``amqp(s)://``, ``embedded`` for a path or ``embedded://`` URL."""
    scheme = urlsplit(url).scheme
    if scheme in ("amqp", "amqps"):
        return "amqp"
    if scheme in ("", "embedded", "file"):
        return "embedded"
    raise SettingsError(
        "a broker URL must be amqp://..., amqps://... or an embedded-queue path, "
        f"not {redact_url(url)!r}"
    )


def embedded_queue_path(url: str) -> Path:
    """The SQLite file of an embedded-queue URL (``embedded:///path``) or plain path."""
    parts = urlsplit(url)
    if parts.scheme in ("embedded", "file"):
        return Path(unquote(parts.path))
    return Path(url).expanduser().resolve()


def _int(environ: Mapping[str, str], name: str, default: int, *, minimum: int = 0) -> int:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, not {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{name} must be at least {minimum}, not {value}")
    return value


def _bool(environ: Mapping[str, str], name: str, *, default: bool) -> bool:
    raw = (environ.get(name) or "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name} must be true or false, not {raw!r}")


def _float(environ: Mapping[str, str], name: str, default: float) -> float:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, not {raw!r}") from None
    if value < 0:
        raise SettingsError(f"{name} must not be negative, not {value}")
    return value


@dataclass(frozen=True)
class Settings:
    """Where artefacts, messages and execution records live.

    Build it with :meth:`from_env`; every field has an embedded default under ``home``.
    ``broker_url`` and ``database_url`` may hold passwords: they are excluded from ``repr``;
    use :meth:`describe` for something safe to print.
    """

    home: Path
    storage_url: str
    broker_url: str = field(repr=False)
    database_url: str = field(repr=False)
    pipeline_configs: tuple[Path, ...] = ()
    confirm_window: int = 256
    broker_max_retries: int = 10
    broker_interval_start: float = 0.5
    broker_interval_step: float = 1.0
    broker_interval_max: float = 10.0
    recovery_max_attempts: int = 3
    progress_every: int = 100
    embedded_lease_seconds: float = 60.0
    auto_recovery: bool = True
    recovery_settle_seconds: float = 60.0
    recovery_sensor_interval: int = 30
    discovery_interval: int = 30
    verify_on_discovery: bool = True

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read ``FACTFLOW_*`` variables (see the README's configuration table)."""
        env = os.environ if environ is None else environ
        home = Path(env.get("FACTFLOW_HOME") or ".factflow").expanduser().resolve()
        storage = env.get("FACTFLOW_STORAGE_URL") or (home / "artefacts").as_uri()
        broker = env.get("FACTFLOW_BROKER_URL") or str(home / "queue.db")
        database = env.get("FACTFLOW_DATABASE_URL") or f"sqlite:///{home / 'executions.db'}"
        configs = tuple(
            Path(p).expanduser()
            for p in (env.get("FACTFLOW_PIPELINES") or "").split(os.pathsep)
            if p
        )
        settings = cls(
            home=home,
            storage_url=storage,
            broker_url=broker,
            database_url=database,
            pipeline_configs=configs,
            confirm_window=_int(env, "FACTFLOW_CONFIRM_WINDOW", 256, minimum=1),
            broker_max_retries=_int(env, "FACTFLOW_BROKER_MAX_RETRIES", 10),
            broker_interval_start=_float(env, "FACTFLOW_BROKER_INTERVAL_START", 0.5),
            broker_interval_step=_float(env, "FACTFLOW_BROKER_INTERVAL_STEP", 1.0),
            broker_interval_max=_float(env, "FACTFLOW_BROKER_INTERVAL_MAX", 10.0),
            recovery_max_attempts=_int(env, "FACTFLOW_RECOVERY_MAX_ATTEMPTS", 3, minimum=1),
            progress_every=_int(env, "FACTFLOW_PROGRESS_EVERY", 100, minimum=1),
            embedded_lease_seconds=_float(env, "FACTFLOW_EMBEDDED_LEASE_SECONDS", 60.0),
            auto_recovery=_bool(env, "FACTFLOW_AUTO_RECOVERY", default=True),
            recovery_settle_seconds=_float(env, "FACTFLOW_RECOVERY_SETTLE_SECONDS", 60.0),
            recovery_sensor_interval=_int(env, "FACTFLOW_RECOVERY_SENSOR_INTERVAL", 30, minimum=1),
            discovery_interval=_int(env, "FACTFLOW_DISCOVERY_INTERVAL", 30, minimum=1),
            verify_on_discovery=_bool(env, "FACTFLOW_VERIFY_ON_DISCOVERY", default=True),
        )
        storage_kind(settings.storage_url)  # validate early, with a clear error
        broker_kind(settings.broker_url)
        return settings

    # -- interpretation -------------------------------------------------------------------

    def storage_kind(self) -> StorageKind:
        return storage_kind(self.storage_url)

    def broker_kind(self) -> BrokerKind:
        return broker_kind(self.broker_url)

    def describe(self) -> dict[str, str]:
        """Every setting as text, passwords redacted: safe for logs, the CLI and the UI."""
        return {
            "home": str(self.home),
            "storage": redact_url(self.storage_url),
            "broker": redact_url(self.broker_url),
            "database": redact_url(self.database_url),
            "pipelines": os.pathsep.join(str(p) for p in self.pipeline_configs) or "(bundled)",
        }
