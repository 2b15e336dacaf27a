"""The one builder: core components (artefact store, queue, execution store) from :class:`Settings`.

The CLI, the Dagster resources, the HTTP API and the benchmarks all come through here, so
one environment means the same components everywhere. Each ``open_*`` builds one component
and connects lazily (nothing is contacted until first use).
"""

from __future__ import annotations

__all__ = [
    "Components",
    "RuntimeDeps",
    "connect",
    "open_artefact_store",
    "open_consumer",
    "open_execution_store",
    "open_publisher",
    "retry_policy",
    "s3_config",
]

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict
from urllib.parse import unquote, urlsplit

from ._closing import Closing
from .errors import SettingsError
from .executions import ExecutionStore
from .queues.base import QueueConsumer, QueuePublisher, RetryPolicy
from .redaction import shown_url
from .settings import Settings
from .storage.base import ArtefactStore

if TYPE_CHECKING:
    from .storage.s3 import S3Config


def s3_config(settings: Settings) -> S3Config:
    """How to reach S3, from the settings' standard AWS variables: the one mapping.

    Reads nothing else: ``S3ArtefactStore`` passes all of it to obstore explicitly, so
    ``AWS_*`` variables the settings did not take cannot override it.
    """
    from .storage.s3 import S3Config

    secret = settings.aws_secret_access_key
    token = settings.aws_session_token
    return S3Config(
        endpoint_url=settings.aws_endpoint_url,
        region_name=settings.aws_region,
        aws_access_key_id=settings.aws_access_key_id,
        aws_secret_access_key=secret.get_secret_value() if secret is not None else None,
        aws_session_token=token.get_secret_value() if token is not None else None,
        ca_bundle=settings.aws_ca_bundle,
        max_attempts=settings.aws_max_attempts,
    )


def retry_policy(settings: Settings) -> RetryPolicy:
    """How a lost broker connection is retried."""
    return RetryPolicy(
        max_retries=settings.broker_max_retries,
        interval_start=settings.broker_interval_start,
        interval_step=settings.broker_interval_step,
        interval_max=settings.broker_interval_max,
    )


def open_artefact_store(settings: Settings) -> ArtefactStore:
    """A folder store for ``file://``, an S3 store for ``s3://bucket/prefix``."""
    url = settings.storage_url
    parts = urlsplit(url)
    if settings.storage_kind() == "file":
        from .storage.local import LocalArtefactStore

        if parts.netloc not in ("", "localhost"):
            raise SettingsError(f"FACTFLOW_STORAGE_URL is not a local file URL: {shown_url(url)!r}")
        return LocalArtefactStore(Path(unquote(parts.path)))
    from .storage.s3 import S3ArtefactStore

    if not parts.netloc:
        raise SettingsError(f"FACTFLOW_STORAGE_URL names no S3 bucket: {shown_url(url)!r}")
    return S3ArtefactStore(s3_config(settings), parts.netloc, prefix=parts.path.lstrip("/"))


def _embedded_queue_path(url: str) -> Path:
    """The SQLite file of an embedded-queue URL (``embedded:///path``) or plain path."""
    parts = urlsplit(url)
    if parts.scheme in ("embedded", "file"):
        return Path(unquote(parts.path))
    return Path(url).expanduser().resolve()


def open_publisher(settings: Settings) -> QueuePublisher:
    """RabbitMQ for ``amqp(s)://`` (confirms, the window in flight), else the embedded queue."""
    url = settings.broker_url.get_secret_value()
    if settings.broker_kind() == "amqp":
        from .queues.rabbitmq import RabbitMQPublisher

        return RabbitMQPublisher(
            url,
            window=settings.confirm_window,
            retry=retry_policy(settings),
            max_message_bytes=settings.broker_max_message_bytes,
            ca_file=settings.broker_ca_file,
        )
    from .queues.embedded import EmbeddedQueue

    return EmbeddedQueue(
        _embedded_queue_path(url),
        lease_seconds=settings.embedded_lease_seconds,
        max_message_bytes=settings.broker_max_message_bytes,
    )


def open_consumer(settings: Settings) -> QueueConsumer:
    """A consumer (one per consuming thread) on the same broker as :func:`open_publisher`."""
    url = settings.broker_url.get_secret_value()
    if settings.broker_kind() == "amqp":
        from .queues.rabbitmq import RabbitMQConsumer

        return RabbitMQConsumer(url, retry=retry_policy(settings), ca_file=settings.broker_ca_file)
    from .queues.embedded import EmbeddedQueue

    return EmbeddedQueue(_embedded_queue_path(url), lease_seconds=settings.embedded_lease_seconds)


def open_execution_store(settings: Settings) -> ExecutionStore:
    """The execution store (migrated to the current schema on first open)."""
    return ExecutionStore(settings.database_url.get_secret_value())


class RuntimeDeps(TypedDict):
    """What the reference runtime's entry points take (``run_pipeline(snapshot, **deps)``)."""

    artefacts: ArtefactStore
    executions: ExecutionStore
    publisher: QueuePublisher
    consumer_factory: Callable[[], QueueConsumer]


@dataclass
class Components(Closing):
    """The core components of one deployment, opened together and closed together: a
    convenience for entry points (the CLI, tests); the core itself takes each explicitly.

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

    def runtime(self) -> RuntimeDeps:
        """These components as the reference runtime's keyword arguments."""
        return RuntimeDeps(
            artefacts=self.artefacts,
            executions=self.executions,
            publisher=self.publisher,
            consumer_factory=self.consumer_factory,
        )

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
