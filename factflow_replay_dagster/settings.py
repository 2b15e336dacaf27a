"""The one settings model: every ``FACTFLOW_*`` and standard ``AWS_*`` variable, each default once.

The CLI, ``definitions.py`` (through the Dagster resources), the HTTP API and the benchmarks
all build their components from a :class:`Settings` through
:mod:`factflow_replay_dagster.connect`. With nothing set, every component is embedded under
one local folder (``FACTFLOW_HOME``, default ``./.factflow``): artefacts in a folder, the
execution store in SQLite, the queue in an embedded SQLite queue.

Anything that may hold a password is a :class:`~pydantic.SecretStr`: it never appears in
``repr``, logs or errors; :meth:`Settings.describe` gives what is safe to show.
"""

from __future__ import annotations

__all__ = [
    "API_TOKEN_MIN_LENGTH",
    "DEFAULTS",
    "BrokerKind",
    "Settings",
    "StorageKind",
    "env_names",
]

import contextlib
import contextvars
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, Final, Literal, Self

from pydantic import (
    AliasChoices,
    BeforeValidator,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from pydantic_settings.sources import EnvSettingsSource, PydanticBaseSettingsSource
from pydantic_settings.sources.utils import parse_env_vars

from ._url_checks import (
    check_amqp_url,
    check_database_url,
    check_endpoint_url,
    check_s3_storage_url,
)
from .errors import SettingsError
from .redaction import redact_url, shown_url

StorageKind = Literal["file", "s3"]
BrokerKind = Literal["amqp", "embedded"]

PREFIX = "FACTFLOW_"


def _tokens(value: object) -> object:
    """``FACTFLOW_API_TOKENS`` is a comma-separated list (several, so they can be rotated)."""
    if isinstance(value, str):
        return tuple(token.strip() for token in value.split(",") if token.strip())
    return value


#: The shortest bearer token the HTTP API accepts in its settings.
API_TOKEN_MIN_LENGTH = 16


def _paths(value: object) -> object:
    """``FACTFLOW_PIPELINES`` is a ``:``-separated list of files or folders."""
    if isinstance(value, str):
        return tuple(Path(p).expanduser() for p in value.split(os.pathsep) if p)
    return value


#: The environment a :meth:`Settings.from_env` call reads (None: ``os.environ``).
_ENVIRON: contextvars.ContextVar[Mapping[str, str] | None] = contextvars.ContextVar(
    "factflow_settings_environ", default=None
)


class _MappingEnvSource(EnvSettingsSource):
    """pydantic-settings' environment source reading a given mapping instead of ``os.environ``."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return parse_env_vars(
            dict(self._environ), self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str
        )


class Settings(BaseSettings):
    """Where artefacts, messages and execution records live, and how components behave.

    Build it with :meth:`from_env` (the process environment, or a given mapping). Every
    field is read from ``FACTFLOW_<FIELD>``; the S3 fields from the standard AWS variables
    (their names are in each field's description). Bad values raise
    :class:`~factflow_replay_dagster.errors.SettingsError` naming the variable.
    """

    model_config = SettingsConfigDict(
        env_prefix=PREFIX,
        env_ignore_empty=True,
        extra="ignore",
        frozen=True,
        populate_by_name=True,
    )

    # -- where things live ------------------------------------------------------------------
    home: Path = Field(
        default=Path(".factflow"),
        description="Folder of the embedded defaults (and of the CLI's Dagster instance).",
    )
    storage_url: str = Field(
        default="",
        description="file:///folder or s3://bucket/prefix (default: $FACTFLOW_HOME/artefacts).",
    )
    broker_url: SecretStr = Field(
        default=SecretStr(""),
        description="amqp://user:password@host:5672/vhost, amqps://..., or an embedded-queue "
        "path (default: $FACTFLOW_HOME/queue.db).",
    )
    database_url: SecretStr = Field(
        default=SecretStr(""),
        description="SQLAlchemy URL of the execution store, e.g. postgresql+psycopg://... "
        "(default: sqlite:///$FACTFLOW_HOME/executions.db).",
    )
    pipelines: Annotated[tuple[Path, ...], NoDecode, BeforeValidator(_paths)] = Field(
        default=(),
        description="Pipeline configs (files or folders, ':'-separated) shown as assets "
        "(default: the bundled samples).",
    )

    # -- the broker --------------------------------------------------------------------------
    broker_ca_file: str | None = Field(
        default=None,
        description="CA certificates (a PEM file) trusted for an amqps:// broker besides the "
        "system's (default: the system's only).",
    )
    confirm_window: int = Field(
        default=1000, ge=1, description="Publisher confirms in flight (messages unconfirmed)."
    )
    broker_max_retries: int = Field(
        default=10, ge=0, description="Reconnects after a lost broker connection."
    )
    broker_interval_start: float = Field(default=0.5, ge=0, description="First retry delay (s).")
    broker_interval_step: float = Field(default=1.0, ge=0, description="Added per retry (s).")
    broker_interval_max: float = Field(default=10.0, ge=0, description="Longest retry delay (s).")
    broker_max_message_bytes: int = Field(
        default=128 * 1024 * 1024,
        ge=1,
        description="The largest message the broker accepts (RabbitMQ's max_message_size); "
        "a replay holding a bigger artefact is refused before it publishes anything.",
    )
    embedded_lease_seconds: float = Field(
        default=60.0,
        gt=0,
        description="Embedded queue: an unacknowledged message is delivered again after this.",
    )

    # -- replay and recovery -----------------------------------------------------------------
    progress_every: int = Field(
        default=1000,
        ge=1,
        description="A running replay saves its position every N confirms (and every 2 s): "
        "after a crash at most this many are sent again.",
    )
    replay_stale_seconds: float = Field(
        default=60.0,
        gt=0,
        description="A RUNNING replay whose process has not beaten this long (it beats every "
        "tenth of it) was killed: it is marked FAILED, resumable, and its Dagster run closed.",
    )
    recovery_max_attempts: int = Field(
        default=3, ge=1, description="Recoveries of one execution before it needs a person."
    )
    recovery_settle_seconds: float = Field(
        default=60.0,
        ge=0,
        description="After a failure, how long recovery waits for the failed attempt's "
        "still-running stages.",
    )

    # -- sensors -----------------------------------------------------------------------------
    auto_recovery: bool = Field(
        default=True, description="Whether failed_execution_sensor starts running."
    )
    recovery_sensor_interval: int = Field(
        default=30, ge=1, description="failed_execution_sensor's interval (s)."
    )
    discovery_interval: int = Field(
        default=30, ge=1, description="stored_artefacts_sensor's interval (s)."
    )
    verify_on_discovery: bool = Field(
        default=True, description="Whether stored_artefacts_sensor counts storage for the check."
    )

    # -- the HTTP API and where it submits runs ----------------------------------------------
    api_tokens: Annotated[tuple[SecretStr, ...], NoDecode, BeforeValidator(_tokens)] = Field(
        default=(),
        description="Bearer tokens the HTTP API accepts, comma-separated (several, to rotate "
        f"them; each at least {API_TOKEN_MIN_LENGTH} characters) (default: none: the API then "
        "serves on a loopback address only).",
    )
    dagster_url: str | None = Field(
        default=None,
        description="Submit the HTTP API's runs to this Dagster webserver's GraphQL, e.g. "
        "http://127.0.0.1:3000 (default: to the Dagster instance of DAGSTER_HOME, "
        "else of $FACTFLOW_HOME/dagster).",
    )
    dagster_location: str = Field(
        default="factflow",
        min_length=1,
        description="The Dagster code location that holds the jobs (workspace.yaml's name).",
    )

    # -- S3 (the standard AWS variables) -----------------------------------------------------
    aws_endpoint_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"),
        description="S3 endpoint, e.g. http://127.0.0.1:8333 for SeaweedFS or MinIO "
        "(the first variable wins; default: AWS).",
    )
    aws_region: str = Field(
        default="us-east-1",
        validation_alias=AliasChoices("AWS_REGION", "AWS_DEFAULT_REGION"),
        description="S3 region (the first variable wins).",
    )
    aws_access_key_id: str | None = Field(
        default=None,
        validation_alias=AliasChoices("AWS_ACCESS_KEY_ID"),
        description="S3 access key id; with its secret, the only credentials used (default: "
        "obstore's chain: web identity, ECS and EKS roles, EC2 instance metadata; no ~/.aws "
        "profiles).",
    )
    aws_secret_access_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("AWS_SECRET_ACCESS_KEY"),
        description="S3 secret access key.",
    )
    aws_session_token: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("AWS_SESSION_TOKEN"),
        description="S3 session token.",
    )
    aws_ca_bundle: str | None = Field(
        default=None,
        validation_alias=AliasChoices("AWS_CA_BUNDLE"),
        description="CA certificates (a PEM file) trusted for S3 over TLS besides the system's "
        "(default: the system's only).",
    )
    aws_max_attempts: int = Field(
        default=5,
        ge=1,
        validation_alias=AliasChoices("AWS_MAX_ATTEMPTS"),
        description="Attempts per S3 request, the first included.",
    )

    # -- building ----------------------------------------------------------------------------

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Values given to the constructor win, then the environment; nothing else is read."""
        environ = _ENVIRON.get()
        if environ is None:
            return init_settings, env_settings
        return init_settings, _MappingEnvSource(settings_cls, environ)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **values: Any) -> Self:
        """Read ``environ`` (default: ``os.environ``); ``values`` (field names) win over it."""
        with _reading(environ):
            try:
                return cls(**values)
            except ValidationError as exc:
                raise SettingsError(_describe(cls, exc)) from None

    @classmethod
    def from_values(cls, **values: Any) -> Self:
        """Settings from ``values`` alone (field names), the environment ignored: what a Dagster
        resource, whose fields are already resolved, builds its components from."""
        return cls.from_env({}, **values)

    @model_validator(mode="before")
    @classmethod
    def _embedded_defaults(cls, data: Any) -> Any:
        """Fill storage, broker and database from ``home`` where they are not set."""
        if not isinstance(data, dict):
            return data
        home = Path(data.get("home") or ".factflow").expanduser().resolve()
        data = {**data, "home": home}
        if not data.get("storage_url"):
            data["storage_url"] = (home / "artefacts").as_uri()
        if not _secret_text(data.get("broker_url")):
            data["broker_url"] = str(home / "queue.db")
        if not _secret_text(data.get("database_url")):
            data["database_url"] = f"sqlite:///{home / 'executions.db'}"
        return data

    @field_validator(
        "aws_endpoint_url",
        "aws_access_key_id",
        "aws_secret_access_key",
        "aws_session_token",
        "aws_ca_bundle",
        "broker_ca_file",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        """A variable set to spaces counts as unset, as boto3 reads the AWS ones."""
        if isinstance(value, str) and not value.strip():
            return None
        return value.strip() if isinstance(value, str) else value

    @field_validator("api_tokens")
    @classmethod
    def _long_enough(cls, tokens: tuple[SecretStr, ...]) -> tuple[SecretStr, ...]:
        short = sum(len(t.get_secret_value()) < API_TOKEN_MIN_LENGTH for t in tokens)
        if short:
            raise ValueError(
                f"{short} token(s) shorter than {API_TOKEN_MIN_LENGTH} characters "
                "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
            )
        return tokens

    @field_validator("dagster_url", mode="before")
    @classmethod
    def _blank_url_is_unset(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("dagster_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and (_scheme(value) not in ("http", "https") or "@" in value):
            raise ValueError("must be http(s)://host:port, without credentials")
        return value

    @model_validator(mode="after")
    def _check_urls(self) -> Self:
        """A URL that makes no sense is refused when the settings are read, naming its
        variable and quoting it only redacted and only if it parses (``_url_checks``)."""
        if self.storage_kind() == "s3":
            check_s3_storage_url(self.storage_url)
        if self.broker_kind() == "amqp":
            check_amqp_url(self.broker_url.get_secret_value())
        if self.database_url.get_secret_value():
            check_database_url(self.database_url.get_secret_value())
        if self.aws_endpoint_url:
            check_endpoint_url(self.aws_endpoint_url)
        if self.broker_ca_file is not None and _scheme(self.broker_url.get_secret_value()) != (
            "amqps"
        ):
            raise SettingsError(
                "FACTFLOW_BROKER_CA_FILE is set but FACTFLOW_BROKER_URL is not amqps://...: "
                "the CA would not be used and the connection would not be encrypted"
            )
        return self

    # -- interpretation ----------------------------------------------------------------------

    def storage_kind(self) -> StorageKind:
        """``file`` or ``s3``; anything else is a :class:`SettingsError`."""
        scheme = _scheme(self.storage_url)
        if scheme in ("file", "s3"):
            return scheme  # type: ignore[return-value]
        raise SettingsError(
            "FACTFLOW_STORAGE_URL must be file:///path or s3://bucket/prefix, "
            f"not {shown_url(self.storage_url)!r}"
        )

    def broker_kind(self) -> BrokerKind:
        """``amqp`` for ``amqp(s)://``, ``embedded`` for a path or ``embedded://`` URL."""
        scheme = _scheme(self.broker_url.get_secret_value())
        if scheme in ("amqp", "amqps"):
            return "amqp"
        if scheme in ("", "embedded", "file"):
            return "embedded"
        raise SettingsError(
            "FACTFLOW_BROKER_URL must be amqp://..., amqps://... or an embedded-queue path, "
            f"not {shown_url(self.broker_url.get_secret_value())!r}"
        )

    def describe(self) -> dict[str, str]:
        """Where things live, passwords redacted: safe for logs, the CLI and the UI."""
        return {
            "home": str(self.home),
            "storage": redact_url(self.storage_url),
            "broker": redact_url(self.broker_url.get_secret_value()),
            "database": redact_url(self.database_url.get_secret_value()),
            "pipelines": os.pathsep.join(str(p) for p in self.pipelines) or "(bundled)",
        }


#: Every setting at its default, for the core's keyword defaults: each default is stated once,
#: in the fields above (URLs derived from ``home`` are not filled in here).
DEFAULTS: Final[Settings] = Settings.model_construct()


def env_names(field: str) -> tuple[str, ...]:
    """The environment variables that set ``field`` (the first one wins)."""
    info = Settings.model_fields[field]
    alias = info.validation_alias
    if isinstance(alias, AliasChoices):
        return tuple(str(choice) for choice in alias.choices)
    return (f"{PREFIX}{field.upper()}",)


def _scheme(url: str) -> str:
    head, sep, _ = url.partition("://")
    return head.lower() if sep else ""


def _secret_text(value: object) -> str:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    return str(value or "")


def _describe(cls: type[Settings], exc: ValidationError) -> str:
    """``FACTFLOW_X: problem; ...``, naming variables and never echoing a value."""
    problems = []
    for error in exc.errors(include_input=False):
        loc = str(error["loc"][0]) if error["loc"] else ""
        field = next(
            (name for name in cls.model_fields if loc == name or loc in env_names(name)), None
        )
        name = " or ".join(env_names(field)) if field else (loc or "settings")
        problems.append(f"{name}: {error['msg']}")
    return "invalid settings: " + "; ".join(problems)


@contextlib.contextmanager
def _reading(environ: Mapping[str, str] | None) -> Iterator[None]:
    token = _ENVIRON.set(environ)
    try:
        yield
    finally:
        _ENVIRON.reset(token)
