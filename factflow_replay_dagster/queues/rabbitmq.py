"""RabbitMQ through pika: a fast confirmed publisher for replay, and a consumer for the runtime.

The publisher keeps a window of unconfirmed messages in flight on a ``SelectConnection``
whose ioloop runs only inside its calls, in the caller's thread (no background thread, so
an interrupt of the main thread stops it). The consumer is a plain ``BlockingConnection``.
"""

from __future__ import annotations

__all__ = ["RabbitMQConsumer", "RabbitMQPublisher"]

from collections.abc import Callable, Iterable
from typing import TypeVar

import pika

from ..errors import (
    MessageNackedError,
    QueueError,
    QueueNotFoundError,
    SettingsError,
    UnroutableMessageError,
)
from ..settings import DEFAULTS
from ._confirm_window import ConfirmWindow, InFlight
from ._pacing import Pacer, check_rate
from ._rabbitmq_common import (
    LOGGER,
    BrokerRedactor,
    ConnectionLost,
    broker_error,
    connection_parameters,
)
from ._rabbitmq_consume import RabbitMQConsumer
from ._rabbitmq_session import ConfirmSession
from .base import (
    ConfirmCallback,
    OutgoingMessage,
    PublishOutcome,
    QueuePublisher,
    RetryPolicy,
    StopCallback,
)

_T = TypeVar("_T")


#: ``delivery_mode`` of a persistent message (pika's enum, resolved once).
_PERSISTENT = pika.DeliveryMode.Persistent.value


def _properties(message: OutgoingMessage) -> pika.BasicProperties:
    """The AMQP properties of ``message`` (its headers are encoded as they are, not copied)."""
    return pika.BasicProperties(
        delivery_mode=_PERSISTENT,
        message_id=message.message_id,
        content_type=message.content_type,
        type=message.type,
        headers=message.headers,
    )


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

    ``ca_file`` adds the CA certificates of a PEM file to the system's for ``amqps://``.
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
    ) -> PublishOutcome:
        check_rate(rate)
        self.check_queue(queue)
        run = _PublishRun(
            self, queue, messages, on_confirmed=on_confirmed, should_stop=should_stop, rate=rate
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


class _PublishRun:
    """The state of one :meth:`RabbitMQPublisher.publish` call."""

    def __init__(
        self,
        publisher: RabbitMQPublisher,
        queue: str,
        source: Iterable[OutgoingMessage],
        *,
        on_confirmed: ConfirmCallback | None,
        should_stop: StopCallback | None,
        rate: float | None,
    ) -> None:
        self.publisher = publisher
        self.session = publisher._session
        self.queue = queue
        self.source = iter(source)
        self.on_confirmed = on_confirmed
        self.should_stop = should_stop
        self.pacer = Pacer(rate)
        self.window = ConfirmWindow()
        self.session.on_confirm = self.window.confirm
        self.session.on_return = self.window.returned
        self.exhausted = False
        self.stopped = False
        self.source_error: Exception | None = None
        self.sent = 0
        self.resent = 0

    def execute(self) -> PublishOutcome:
        failures = 0
        generation = self.session.generation
        while True:
            try:
                self.session.open()
                if self.session.generation != generation:
                    generation = self.session.generation
                    self._resend()
                while True:
                    if self._report():
                        failures = 0
                    wait = self._fill()
                    if self.window.unsettled == 0 and (
                        self.exhausted or self.stopped or self.window.failed
                    ):
                        return self._finish()
                    self.session.turn(wait)
            except ConnectionLost as lost:
                self.session.reset()
                if self.window.failed:
                    self._raise_failure()
                failures = self.publisher._backoff(
                    lost,
                    failures,
                    what=f"publish to queue {self.queue!r}",
                    confirmed=self.window.confirmed,
                )

    def _resend(self) -> None:
        entries = self.window.for_resend()
        if entries:
            LOGGER.info(
                "re-sending %d unconfirmed message(s) to %r on %s",
                len(entries),
                self.queue,
                self.publisher.broker,
            )
        for entry in entries:
            self.window.resent(entry, self.session.publish(self.queue, *_wire(entry)))
            self.resent += 1

    def _report(self) -> bool:
        """Hand newly confirmed messages to ``on_confirmed``; True if there were any."""
        run = self.window.take_confirmed()
        if run and self.on_confirmed is not None:
            self.on_confirmed(run)
        return bool(run)

    def _fill(self) -> float | None:
        """Send until the window is full; return how long to wait for the rate, if it limits."""
        window, session, limit = self.window, self.session, self.publisher.window
        while not (self.exhausted or self.stopped or window.failed) and len(window) < limit:
            if self.should_stop is not None and self.should_stop():
                LOGGER.info("stop requested after %d message(s) sent to %r", self.sent, self.queue)
                self.stopped = True
                break
            if self.pacer.limited and (wait := self.pacer.delay()) > 0:
                return wait
            try:
                message = next(self.source)
            except StopIteration:
                self.exhausted = True
                break
            except Exception as exc:  # noqa: BLE001 - re-raised once sent messages are confirmed
                self.source_error = exc
                self.stopped = True
                break
            window.sent(message, session.publish(self.queue, message.body, _properties(message)))
            self.pacer.sent()
            self.sent += 1
        return None

    def _finish(self) -> PublishOutcome:
        self._report()
        if self.window.failed:
            self._raise_failure()
        if self.source_error is not None:
            raise self.source_error
        return PublishOutcome(
            confirmed=self.window.confirmed,
            stopped=self.stopped,
            resent=self.resent,
            last_position=self.window.last_position,
        )

    def _raise_failure(self) -> None:
        self._report()
        entry = self.window.front_failure()
        confirmed = self.window.confirmed
        if entry is None:  # the failed message is behind one never answered (connection lost)
            raise QueueError(
                f"publishing to queue {self.queue!r} on {self.publisher.broker} failed: the "
                "broker refused or returned a message; "
                f"{confirmed} message(s) of this call were confirmed",
                confirmed=confirmed,
            )
        message_id = entry.message.message_id
        if entry.returned:
            raise UnroutableMessageError(self.queue, message_id, confirmed=confirmed)
        raise MessageNackedError(self.queue, message_id, confirmed=confirmed)


def _wire(entry: InFlight) -> tuple[bytes, pika.BasicProperties]:
    return entry.message.body, _properties(entry.message)
