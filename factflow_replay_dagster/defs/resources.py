"""Dagster resources: thin, configurable shells over the one settings model and the one builder.

Each resource's fields are fields of :class:`~factflow_replay_dagster.settings.Settings`, with
the same names, defaults and descriptions (read from the model, stated nowhere else);
``open*`` turns them back into settings and builds the core component through
:mod:`factflow_replay_dagster.connect`, exactly as the CLI does. Nothing connects when a
resource is built. Secrets come through :class:`dagster.EnvVar`, so the launchpad and run
config show ``{env: NAME}``, never a password.
"""

# No `from __future__ import annotations` here: Dagster reads the field annotations at runtime.

__all__ = ["ArtefactStoreResource", "ExecutionStoreResource", "QueueResource", "build_resources"]

import os
from collections.abc import Mapping
from typing import Any

import dagster as dg
from pydantic import Field, SecretStr

from ..connect import open_artefact_store, open_consumer, open_execution_store, open_publisher
from ..executions import ExecutionStore
from ..queues.base import QueueConsumer, QueuePublisher
from ..redaction import redact_url
from ..settings import Settings, env_names
from ..storage.base import ArtefactStore


def _setting(name: str) -> Any:
    """A resource field with the default and description of the settings field ``name``."""
    info = Settings.model_fields[name]
    default = info.default
    if isinstance(default, SecretStr):
        default = default.get_secret_value()
    variables = " or ".join(env_names(name))
    return Field(default=default, description=f"{info.description} [{variables}]")


class _SettingsResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """A resource whose fields are settings fields; :meth:`settings` gives them back."""

    def settings(self) -> Settings:
        """The settings these fields describe (the environment is not read again)."""
        values = {name: getattr(self, name) for name in type(self).model_fields}
        return Settings.from_values(**values)


class ArtefactStoreResource(_SettingsResource):
    """Where stages store artefacts: a local folder or an S3 bucket and prefix."""

    storage_url: str = _setting("storage_url")
    aws_endpoint_url: str | None = _setting("aws_endpoint_url")
    aws_region: str = _setting("aws_region")
    aws_access_key_id: str | None = _setting("aws_access_key_id")
    aws_secret_access_key: str | None = _setting("aws_secret_access_key")
    aws_session_token: str | None = _setting("aws_session_token")
    aws_ca_bundle: str | None = _setting("aws_ca_bundle")
    aws_max_attempts: int = _setting("aws_max_attempts")

    def open(self) -> ArtefactStore:
        return open_artefact_store(self.settings())

    def describe(self) -> str:
        return redact_url(self.storage_url)


class QueueResource(_SettingsResource):
    """The broker replay publishes to: RabbitMQ (``amqp(s)://``) or the embedded queue."""

    broker_url: str = _setting("broker_url")
    broker_ca_file: str | None = _setting("broker_ca_file")
    confirm_window: int = _setting("confirm_window")
    broker_max_retries: int = _setting("broker_max_retries")
    broker_interval_start: float = _setting("broker_interval_start")
    broker_interval_step: float = _setting("broker_interval_step")
    broker_interval_max: float = _setting("broker_interval_max")
    broker_max_message_bytes: int = _setting("broker_max_message_bytes")
    embedded_lease_seconds: float = _setting("embedded_lease_seconds")

    def open_publisher(self) -> QueuePublisher:
        return open_publisher(self.settings())

    def open_consumer(self) -> QueueConsumer:
        return open_consumer(self.settings())

    def describe(self) -> str:
        return redact_url(self.broker_url)


class ExecutionStoreResource(_SettingsResource):
    """The execution store: executions with their config snapshots, lineage, replays."""

    database_url: str = _setting("database_url")
    recovery_max_attempts: int = _setting("recovery_max_attempts")
    progress_every: int = _setting("progress_every")
    replay_stale_seconds: float = _setting("replay_stale_seconds")
    recovery_settle_seconds: float = _setting("recovery_settle_seconds")

    def open(self) -> ExecutionStore:
        return open_execution_store(self.settings())

    def describe(self) -> str:
        return redact_url(self.database_url)


#: Fields given as ``EnvVar`` when their variable is set: they may hold a secret (or point at
#: one), and EnvVar keeps the value out of the run config and the UI.
_FROM_ENVIRONMENT = frozenset(
    {
        "storage_url",
        "broker_url",
        "database_url",
        "aws_endpoint_url",
        "aws_access_key_id",
        "aws_secret_access_key",
        "aws_session_token",
    }
)


def _values(
    resource: type[_SettingsResource], settings: Settings, environ: Mapping[str, str]
) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name in resource.model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if name in _FROM_ENVIRONMENT:
            variable = next((v for v in env_names(name) if environ.get(v)), None)
            if variable is not None:
                value = dg.EnvVar(variable)
        values[name] = value
    return values


def build_resources(
    settings: Settings, environ: Mapping[str, str] | None = None
) -> dict[str, _SettingsResource]:
    """The resources for ``settings``; values that came from a variable of ``environ``
    (default ``os.environ``) that may hold a secret stay ``EnvVar``s."""
    env = os.environ if environ is None else environ
    return {
        "artefacts": ArtefactStoreResource(**_values(ArtefactStoreResource, settings, env)),
        "queue": QueueResource(**_values(QueueResource, settings, env)),
        "executions": ExecutionStoreResource(**_values(ExecutionStoreResource, settings, env)),
    }
