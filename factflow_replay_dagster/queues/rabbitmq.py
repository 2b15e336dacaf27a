"""RabbitMQ through pika: a fast confirmed publisher for replay, and a consumer for the runtime.

The publisher keeps a window of unconfirmed messages in flight on a ``SelectConnection``
whose ioloop runs only inside its calls, in the caller's thread (no background thread, so
an interrupt of the main thread stops it); ``_rabbitmq_publish`` holds one call's state. The
consumer is a plain ``BlockingConnection``.
"""

from __future__ import annotations

__all__ = ["RabbitMQConsumer", "RabbitMQPublisher"]

from collections.abc import Callable, Iterable
from typing import TypeVar

from ..errors import QueueNotFoundError, SettingsError
from ..settings import DEFAULTS
from ._pacing import check_rate
from ._rabbitmq_common import (
    LOGGER,
    BrokerRedactor,
    ConnectionLost,
    broker_error,
    connection_parameters,
)
from ._rabbitmq_consume import RabbitMQConsumer
from ._rabbitmq_publish import PublishRun
from ._rabbitmq_session import ConfirmSession
from .base import (
    BlockedCallback,
    ConfirmCallback,
    OutgoingMessage,
    PublishOutcome,
    QueuePublisher,
    RetryPolicy,
    StopCallback,
)

_T = TypeVar("_T")


class RabbitMQPublisher(QueuePublisher):
    """Publishes persistent, ``mandatory`` messages to a queue through the default exchange.

    Up to ``window`` messages are unconfirmed at once; ``on_confirmed`` gets the confirmed
    ones in publish order. A lost connection is retried with ``retry``'s backoff (the
    counter restarts whenever a confirm arrives); messages still unconfirmed are then sent
    again (same ``message_id``, counted in ``PublishOutcome.resent``), so a consumer may see
    duplicates: at most ``window`` per lost connection. The connection is kept between calls
    and reopened when needed; ``close()`` closes it.

    On failure, the error's ``confirmed`` is the number of messages of the call confirmed
    in an unbroken run from the first one, every one of them already passed to
    ``on_confirmed``. Nothing after that run is promised: a message there may be stored
    (its confirm was lost, or it follows a nacked one), so resuming publishes it again.

    While the broker blocks publishers (RabbitMQ's memory or disk alarm) the call waits,
    sending nothing more, and tells ``on_blocked``; a stop requested meanwhile ends it
    without waiting for the confirms the blocked broker cannot send (those messages count
    as unconfirmed). ``ca_file`` adds a PEM CA to the system's for ``amqps://``.
    """

    def __init__(
        self,
        url: str,
        *,
        window: int = DEFAULTS.confirm_window,
        max_message_bytes: int = DEFAULTS.broker_max_message_bytes,
        retry: RetryPolicy = RetryPolicy(),  # noqa: B008 - frozen dataclass, safe as a default
        connect_timeout: float = 10.0,
        heartbeat: int = 30,
        ca_file: str | None = None,
    ) -> None:
        if window < 1:
            raise SettingsError(f"the confirm window must be at least 1, not {window}")
        self._redactor = BrokerRedactor(url)
        self.broker = self._redactor.broker
        self.window = window
        self.max_message_bytes = max_message_bytes
        self.retry = retry
        self.ca_file = ca_file
        params = connection_parameters(
            url,
            heartbeat=heartbeat,
            connect_timeout=connect_timeout,
            name="factflow-replay publisher",
            ca_file=ca_file,
        )
        self._session = ConfirmSession(params, timeout=connect_timeout, redactor=self._redactor)

    def __repr__(self) -> str:
        return f"RabbitMQPublisher(broker={self.broker!r}, window={self.window})"

    # -- queues ------------------------------------------------------------------------------

    def check_connection(self) -> None:
        self._with_retries("connect", self._session.open)

    def check_queue(self, queue: str) -> None:
        if not self._with_retries(f"check queue {queue!r}", self._declarer(queue, passive=True)):
            raise QueueNotFoundError(queue, self.broker)

    def declare_queue(self, queue: str) -> None:
        self._with_retries(f"declare queue {queue!r}", self._declarer(queue, passive=False))

    def _declarer(self, queue: str, *, passive: bool) -> Callable[[], bool]:
        return lambda: self._session.declare(queue, passive=passive)

    def _with_retries(self, what: str, operation: Callable[[], _T]) -> _T:
        failures = 0
        while True:
            try:
                return operation()
            except ConnectionLost as lost:
                self._session.reset()
                failures = self._backoff(lost, failures, what=what)

    def _backoff(
        self, lost: ConnectionLost, failures: int, *, what: str, confirmed: int | None = None
    ) -> int:
        """Wait before the next retry, or raise BrokerConnectionError once retries ran out."""
        if not lost.retryable or failures >= self.retry.max_retries:
            raise broker_error(self.broker, what, lost, failures, confirmed=confirmed) from None
        delay = self.retry.delay(failures)
        LOGGER.warning(
            "%s: %s; retry %d of %d in %.1f s",
            self.broker,
            lost.reason,
            failures + 1,
            self.retry.max_retries,
            delay,
        )
        self._session.pause(delay)
        return failures + 1

    # -- publishing --------------------------------------------------------------------------

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
        check_rate(rate)
        self.check_queue(queue)
        what = f"publish to queue {queue!r}"
        run = PublishRun(
            self._session,
            queue,
            messages,
            broker=self.broker,
            limit=self.window,
            backoff=lambda lost, failures, confirmed: self._backoff(
                lost, failures, what=what, confirmed=confirmed
            ),
            on_confirmed=on_confirmed,
            should_stop=should_stop,
            rate=rate,
            on_blocked=on_blocked,
        )
        finished = False
        try:
            outcome = run.execute()
            finished = True
            return outcome
        finally:
            if not finished and run.window.unsettled:
                # Interrupted or failed with messages unanswered: start the next call afresh.
                self._session.reset()

    def close(self) -> None:
        self._session.close()
