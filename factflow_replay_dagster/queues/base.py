"""The queue interface: confirmed publishing for replay, and consuming for the reference runtime."""

from __future__ import annotations

__all__ = [
    "BlockedCallback",
    "ConfirmCallback",
    "Delivery",
    "OutgoingMessage",
    "PublishOutcome",
    "QueueConsumer",
    "QueuePublisher",
    "RetryPolicy",
    "StopCallback",
]

import abc
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from .._closing import Closing
from ..settings import DEFAULTS

HeaderValue = str | int | bool


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """One message to publish.

    ``message_id`` must be deterministic for the thing it carries, so a consumer can
    de-duplicate re-sends. ``position`` is the caller's cursor (for replay: the artefact key)
    reported back once the message is confirmed; it is never sent.
    """

    message_id: str
    body: bytes
    headers: dict[str, HeaderValue] = field(default_factory=dict)
    content_type: str = "application/octet-stream"
    type: str = "factflow.artefact"
    position: str | None = None


ConfirmCallback = Callable[[Sequence[OutgoingMessage]], None]
"""Called with each run of newly confirmed messages, in publish order, never out of order."""

StopCallback = Callable[[], bool]
"""Polled between messages; returning True stops publishing at that message boundary."""

BlockedCallback = Callable[[str | None], None]
"""Called when the broker starts blocking the publisher, with its reason (RabbitMQ's memory or
disk alarm: ``"low on memory"``), and with None when it accepts messages again. Meanwhile
publishing waits: nothing more is sent, nothing is dropped, ``should_stop`` is still polled."""


@dataclass(frozen=True, slots=True)
class PublishOutcome:
    """What one :meth:`QueuePublisher.publish` call achieved.

    ``confirmed`` counts messages the broker confirmed (the only ones that count as sent);
    ``stopped`` says ``should_stop`` ended the call early, after outstanding confirms arrived
    (or, while the broker blocked publishing, without waiting for them: those count as not
    confirmed, so a resume sends them again with the same ids); ``resent`` counts messages
    sent again after a reconnect (same ``message_id``).
    """

    confirmed: int
    stopped: bool = False
    resent: int = 0
    last_position: str | None = None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How a lost broker connection is retried (kombu's names and meaning).

    The n-th consecutive retry waits ``min(interval_start + n * interval_step, interval_max)``
    seconds; after ``max_retries`` consecutive failures without progress the publish fails
    with :class:`~factflow_replay_dagster.errors.BrokerConnectionError`.
    """

    max_retries: int = DEFAULTS.broker_max_retries
    interval_start: float = DEFAULTS.broker_interval_start
    interval_step: float = DEFAULTS.broker_interval_step
    interval_max: float = DEFAULTS.broker_interval_max

    def delay(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (0-based)."""
        return min(self.interval_start + retry * self.interval_step, self.interval_max)


class QueuePublisher(Closing, abc.ABC):
    """Publishes messages with confirmation: a message counts as sent only once confirmed.

    Implementations: RabbitMQ (publisher confirms, persistent, ``mandatory``) and the
    embedded SQLite queue (a committed row is a confirmed message).
    """

    #: Where messages go, for errors and logs (``amqp://host:5672/vhost``); never a password.
    broker: str
    #: The largest message body the broker takes (a replay checks its artefacts in the plan).
    max_message_bytes: int = DEFAULTS.broker_max_message_bytes

    @abc.abstractmethod
    def check_connection(self) -> None:
        """Reach the broker, or raise :class:`~factflow_replay_dagster.errors.QueueError`
        (a readiness check: nothing is declared or sent)."""

    @abc.abstractmethod
    def check_queue(self, queue: str) -> None:
        """Raise :class:`~factflow_replay_dagster.errors.QueueNotFoundError` if it is absent."""

    @abc.abstractmethod
    def declare_queue(self, queue: str) -> None:
        """Create ``queue`` as a durable queue if it does not exist (idempotent)."""

    @abc.abstractmethod
    def publish(
        self,
        queue: str,
        messages: Iterable[OutgoingMessage],
        *,
        on_confirmed: ConfirmCallback | None = None,
        should_stop: StopCallback | None = None,
        rate: float | None = None,
        on_blocked: BlockedCallback | None = None,
    ) -> PublishOutcome:
        """Publish ``messages`` (consumed lazily, in order) to ``queue`` and wait for confirms.

        ``queue`` is checked first; a missing queue fails before anything is sent.
        ``rate`` caps messages per second. While the broker blocks publishers, publishing
        waits and ``on_blocked`` hears when that starts and ends. On failure the raised
        :class:`~factflow_replay_dagster.errors.QueueError` carries ``confirmed``, and
        ``on_confirmed`` has already been called for every confirmed message.
        """

    def close(self) -> None:
        """Close connections; publishing again reconnects."""


class Delivery(abc.ABC):
    """One received message; settle it with :meth:`ack` or :meth:`nack`."""

    queue: str
    message_id: str
    body: bytes
    headers: dict[str, HeaderValue]
    content_type: str
    type: str
    redelivered: bool

    @abc.abstractmethod
    def ack(self) -> None:
        """The message is handled; it will not be delivered again."""

    @abc.abstractmethod
    def nack(self, *, requeue: bool = True) -> None:
        """The message was not handled; with ``requeue`` it is delivered again."""


class QueueConsumer(Closing, abc.ABC):
    """Receives messages at least once; used by the reference runtime and by tests."""

    broker: str

    @abc.abstractmethod
    def declare_queue(self, queue: str) -> None:
        """Create ``queue`` as a durable queue if it does not exist (idempotent)."""

    @abc.abstractmethod
    def consume(
        self, queues: Sequence[str], *, stop: threading.Event, prefetch: int = 16
    ) -> Iterator[Delivery]:
        """Yield deliveries from ``queues`` until ``stop`` is set.

        Unsettled deliveries are delivered again when the consumer goes away (a crash loses
        nothing). Deliveries must be settled on the thread that iterates.
        """
