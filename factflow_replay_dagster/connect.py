"""Build the core components (artefact store, queue, execution store) from :class:`Settings`."""

from __future__ import annotations

__all__ = [
    "Components",
    "connect",
    "open_artefact_store",
    "open_consumer",
    "open_execution_store",
    "open_publisher",
]

from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from .executions import ExecutionStore
from .queues.base import QueueConsumer, QueuePublisher, RetryPolicy
from .settings import Settings
from .storage.base import ArtefactStore


def open_artefact_store(settings: Settings, *, s3_client: Any | None = None) -> ArtefactStore:
    """A folder store for ``file://``, an S3 store for ``s3://`` (``s3_client`` or one built
    from the standard AWS variables, the way dagster-aws's S3Resource builds it)."""
    if settings.storage_kind() == "file":
        from .storage.local import LocalArtefactStore

        return LocalArtefactStore(settings.storage_folder())
    from .storage.s3 import S3ArtefactStore, S3Config, make_s3_client

    bucket, prefix = settings.s3_location()
    client = s3_client if s3_client is not None else make_s3_client(S3Config.from_env())
    return S3ArtefactStore(client, bucket, prefix=prefix)


def retry_policy(settings: Settings) -> RetryPolicy:
    return RetryPolicy(
        max_retries=settings.broker_max_retries,
        interval_start=settings.broker_interval_start,
        interval_step=settings.broker_interval_step,
        interval_max=settings.broker_interval_max,
    )


def open_publisher(settings: Settings) -> QueuePublisher:
    """RabbitMQ (confirms, window of ``confirm_window``) or the embedded queue."""
    if settings.broker_kind() == "amqp":
        from .queues.rabbitmq import RabbitMQPublisher

        return RabbitMQPublisher(
            settings.broker_url, window=settings.confirm_window, retry=retry_policy(settings)
        )
    from .queues.embedded import EmbeddedQueue

    return EmbeddedQueue(
        settings.embedded_queue_path(), lease_seconds=settings.embedded_lease_seconds
    )


def open_consumer(settings: Settings) -> QueueConsumer:
    if settings.broker_kind() == "amqp":
        from .queues.rabbitmq import RabbitMQConsumer

        return RabbitMQConsumer(settings.broker_url)
    from .queues.embedded import EmbeddedQueue

    return EmbeddedQueue(
        settings.embedded_queue_path(), lease_seconds=settings.embedded_lease_seconds
    )


def open_execution_store(settings: Settings) -> ExecutionStore:
    return ExecutionStore(settings.database_url)


@dataclass
class Components:
    """The three core components, opened together and closed together.

    Nothing connects until first use: the publisher and stores open lazily.
    """

    settings: Settings
    artefacts: ArtefactStore
    executions: ExecutionStore
    _publisher: QueuePublisher | None = field(default=None, repr=False)

    @property
    def publisher(self) -> QueuePublisher:
        if self._publisher is None:
            self._publisher = open_publisher(self.settings)
        return self._publisher

    def consumer(self) -> QueueConsumer:
        """A new consumer (one per consuming thread)."""
        return open_consumer(self.settings)

    def close(self) -> None:
        if self._publisher is not None:
            self._publisher.close()
            self._publisher = None
        self.artefacts.close()
        self.executions.close()

    def __enter__(self) -> Components:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def connect(settings: Settings | None = None) -> Components:
    """Open every component described by ``settings`` (default: from the environment)."""
    settings = settings or Settings.from_env()
    return Components(
        settings=settings,
        artefacts=open_artefact_store(settings),
        executions=open_execution_store(settings),
    )
