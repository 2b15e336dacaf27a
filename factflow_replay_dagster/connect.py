"""Build the core components (artefact store, queue, execution store) from URLs or Settings.

The CLI and the Dagster resources both come through here, so a URL means the same thing
everywhere.
"""

from __future__ import annotations

__all__ = [
    "Components",
    "artefact_store_for",
    "connect",
    "consumer_for",
    "open_artefact_store",
    "open_consumer",
    "open_execution_store",
    "open_publisher",
    "publisher_for",
    "retry_policy",
]

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ._closing import Closing
from .executions import ExecutionStore
from .queues.base import QueueConsumer, QueuePublisher, RetryPolicy
from .settings import (
    Settings,
    broker_kind,
    embedded_queue_path,
    s3_location,
    storage_folder,
    storage_kind,
)
from .storage.base import ArtefactStore


def artefact_store_for(storage_url: str, *, s3_client: Any | None = None) -> ArtefactStore:
    """A folder store for ``file://``, an S3 store for ``s3://bucket/prefix`` (with
    ``s3_client``, or one built from the standard AWS variables the way dagster-aws's
    S3Resource builds it)."""
    if storage_kind(storage_url) == "file":
        from .storage.local import LocalArtefactStore

        return LocalArtefactStore(storage_folder(storage_url))
    from .storage.s3 import S3ArtefactStore, S3Config, make_s3_client

    bucket, prefix = s3_location(storage_url)
    client = s3_client if s3_client is not None else make_s3_client(S3Config.from_env())
    return S3ArtefactStore(client, bucket, prefix=prefix)


def publisher_for(
    broker_url: str,
    *,
    window: int = 256,
    retry: RetryPolicy | None = None,
    lease_seconds: float = 60.0,
) -> QueuePublisher:
    """RabbitMQ for ``amqp(s)://`` (confirms, ``window`` in flight), else the embedded queue."""
    if broker_kind(broker_url) == "amqp":
        from .queues.rabbitmq import RabbitMQPublisher

        return RabbitMQPublisher(broker_url, window=window, retry=retry or RetryPolicy())
    from .queues.embedded import EmbeddedQueue

    return EmbeddedQueue(embedded_queue_path(broker_url), lease_seconds=lease_seconds)


def consumer_for(broker_url: str, *, lease_seconds: float = 60.0) -> QueueConsumer:
    if broker_kind(broker_url) == "amqp":
        from .queues.rabbitmq import RabbitMQConsumer

        return RabbitMQConsumer(broker_url)
    from .queues.embedded import EmbeddedQueue

    return EmbeddedQueue(embedded_queue_path(broker_url), lease_seconds=lease_seconds)


def retry_policy(settings: Settings) -> RetryPolicy:
    return RetryPolicy(
        max_retries=settings.broker_max_retries,
        interval_start=settings.broker_interval_start,
        interval_step=settings.broker_interval_step,
        interval_max=settings.broker_interval_max,
    )


def open_artefact_store(settings: Settings, *, s3_client: Any | None = None) -> ArtefactStore:
    return artefact_store_for(settings.storage_url, s3_client=s3_client)


def open_publisher(settings: Settings) -> QueuePublisher:
    return publisher_for(
        settings.broker_url,
        window=settings.confirm_window,
        retry=retry_policy(settings),
        lease_seconds=settings.embedded_lease_seconds,
    )


def open_consumer(settings: Settings) -> QueueConsumer:
    return consumer_for(settings.broker_url, lease_seconds=settings.embedded_lease_seconds)


def open_execution_store(settings: Settings) -> ExecutionStore:
    return ExecutionStore(settings.database_url)


@dataclass
class Components(Closing):
    """The core components, opened together and closed together.

    The publisher connects on first use; each consumer is new (one per consuming thread).
    """

    artefacts: ArtefactStore
    executions: ExecutionStore
    publisher_factory: Callable[[], QueuePublisher] = field(repr=False)
    consumer_factory: Callable[[], QueueConsumer] = field(repr=False)
    _publisher: QueuePublisher | None = field(default=None, repr=False)

    @property
    def publisher(self) -> QueuePublisher:
        if self._publisher is None:
            self._publisher = self.publisher_factory()
        return self._publisher

    def consumer(self) -> QueueConsumer:
        return self.consumer_factory()

    def close(self) -> None:
        if self._publisher is not None:
            self._publisher.close()
            self._publisher = None
        self.artefacts.close()
        self.executions.close()


def connect(settings: Settings | None = None) -> Components:
    """Open every component described by ``settings`` (default: from the environment)."""
    settings = settings or Settings.from_env()
    return Components(
        artefacts=open_artefact_store(settings),
        executions=open_execution_store(settings),
        publisher_factory=lambda: open_publisher(settings),
        consumer_factory=lambda: open_consumer(settings),
    )
