"""Dagster resources: thin, configurable shells that hand out the plain core components.

Nothing connects when a resource is built; each ``open_*`` method returns a core object to
use in a ``with`` block inside an op or sensor. Secrets come through :class:`dagster.EnvVar`,
so the launchpad and run config show ``{env: NAME}``, never a password.
"""

from __future__ import annotations

__all__ = ["ArtefactStoreResource", "ExecutionStoreResource", "QueueResource", "build_resources"]

from typing import Any

import dagster as dg
from dagster_aws.s3 import S3Resource
from pydantic import Field

from .connect import artefact_store_for, consumer_for, publisher_for
from .executions import ExecutionStore
from .queues.base import QueueConsumer, QueuePublisher, RetryPolicy
from .settings import Settings, redact_url, storage_kind
from .storage.base import ArtefactStore


class ArtefactStoreResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """Where stages store artefacts: a local folder or an S3 bucket and prefix."""

    storage_url: str = Field(
        description="file:///absolute/folder or s3://bucket/prefix (FACTFLOW_STORAGE_URL)."
    )
    s3: S3Resource = Field(
        default_factory=S3Resource,
        description="dagster-aws S3 settings (endpoint, region, credentials) for s3:// URLs.",
    )

    def open(self) -> ArtefactStore:
        """The artefact store; an S3 store gets its client from the nested S3Resource."""
        if storage_kind(self.storage_url) == "s3":
            return artefact_store_for(self.storage_url, s3_client=self.s3.get_client())
        return artefact_store_for(self.storage_url)

    def describe(self) -> str:
        return redact_url(self.storage_url)


class QueueResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """The broker replay publishes to: RabbitMQ (``amqp(s)://``) or the embedded queue."""

    broker_url: str = Field(
        description="amqp://user:password@host:5672/vhost, amqps://..., or an embedded-queue "
        "path (FACTFLOW_BROKER_URL). Give URLs with passwords as an EnvVar."
    )
    confirm_window: int = Field(
        default=256, ge=1, description="Messages in flight awaiting publisher confirms."
    )
    max_retries: int = Field(
        default=10, ge=0, description="Consecutive reconnect attempts after a lost connection."
    )
    interval_start: float = Field(default=0.5, ge=0, description="First retry delay (s).")
    interval_step: float = Field(default=1.0, ge=0, description="Added per retry (s).")
    interval_max: float = Field(default=10.0, ge=0, description="Longest retry delay (s).")
    embedded_lease_seconds: float = Field(
        default=60.0, gt=0, description="Embedded queue: redelivery delay of unacked messages."
    )

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            max_retries=self.max_retries,
            interval_start=self.interval_start,
            interval_step=self.interval_step,
            interval_max=self.interval_max,
        )

    def open_publisher(self) -> QueuePublisher:
        return publisher_for(
            self.broker_url,
            window=self.confirm_window,
            retry=self.retry_policy(),
            lease_seconds=self.embedded_lease_seconds,
        )

    def open_consumer(self) -> QueueConsumer:
        return consumer_for(self.broker_url, lease_seconds=self.embedded_lease_seconds)

    def describe(self) -> str:
        return redact_url(self.broker_url)


class ExecutionStoreResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """The execution store: executions with their config snapshots, lineage, replays."""

    database_url: str = Field(
        description="SQLAlchemy URL (FACTFLOW_DATABASE_URL), e.g. sqlite:////path/executions.db "
        "or postgresql+psycopg://user:password@host/db. Give URLs with passwords as an EnvVar."
    )
    recovery_max_attempts: int = Field(
        default=3, ge=1, description="Recoveries of one execution before it needs a person."
    )
    replay_progress_every: int = Field(
        default=100,
        ge=1,
        description="A running replay saves its position every N confirms "
        "(and every 2 s): after a crash at most this many are sent again.",
    )
    recovery_settle_seconds: float = Field(
        default=60.0,
        ge=0,
        description="After a failure, how long recovery waits for the "
        "failed attempt's still-running stages to finish before restarting without them.",
    )

    def open(self) -> ExecutionStore:
        return ExecutionStore(self.database_url)

    def describe(self) -> str:
        return redact_url(self.database_url)


def _env_or(name: str, value: str, environ: dict[str, str]) -> Any:
    """``EnvVar(name)`` when the variable is set (secrets stay out of the UI), else ``value``."""
    return dg.EnvVar(name) if environ.get(name) else value


def build_resources(settings: Settings, environ: dict[str, str] | None = None) -> dict[str, Any]:
    """The resources for ``settings``: values set by environment variables stay ``EnvVar``s."""
    import os

    env = dict(os.environ if environ is None else environ)
    s3_fields: dict[str, Any] = {}
    for field, names in {
        "endpoint_url": ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"),
        "region_name": ("AWS_REGION", "AWS_DEFAULT_REGION"),
        "aws_access_key_id": ("AWS_ACCESS_KEY_ID",),
        "aws_secret_access_key": ("AWS_SECRET_ACCESS_KEY",),
        "aws_session_token": ("AWS_SESSION_TOKEN",),
    }.items():
        for name in names:
            if env.get(name):
                s3_fields[field] = dg.EnvVar(name)
                break
    if "endpoint_url" in s3_fields:
        s3_fields["use_ssl"] = str(
            env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")
        ).startswith("https")
    return {
        "artefacts": ArtefactStoreResource(
            storage_url=_env_or("FACTFLOW_STORAGE_URL", settings.storage_url, env),
            s3=S3Resource(**s3_fields),
        ),
        "queue": QueueResource(
            broker_url=_env_or("FACTFLOW_BROKER_URL", settings.broker_url, env),
            confirm_window=settings.confirm_window,
            max_retries=settings.broker_max_retries,
            interval_start=settings.broker_interval_start,
            interval_step=settings.broker_interval_step,
            interval_max=settings.broker_interval_max,
            embedded_lease_seconds=settings.embedded_lease_seconds,
        ),
        "executions": ExecutionStoreResource(
            database_url=_env_or("FACTFLOW_DATABASE_URL", settings.database_url, env),
            recovery_max_attempts=settings.recovery_max_attempts,
            replay_progress_every=settings.progress_every,
            recovery_settle_seconds=settings.recovery_settle_seconds,
        ),
    }
