"""Consume from RabbitMQ with a pika ``BlockingConnection``, reconnecting when the broker goes."""

from __future__ import annotations

__all__ = ["RabbitMQConsumer", "decode_headers"]

import threading
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import pika
import pika.exceptions

from ..errors import QueueError, QueueNotFoundError
from ._rabbitmq_common import (
    LOGGER,
    BrokerRedactor,
    ConnectionLost,
    broker_error,
    channel_refusal,
    connect_failure,
    connection_parameters,
)
from .base import Delivery, HeaderValue, QueueConsumer, RetryPolicy

_PIKA_ERRORS = (pika.exceptions.AMQPConnectionError, pika.exceptions.AMQPChannelError)
_POLL_SECONDS = 0.25


def decode_headers(raw: Mapping[str, Any] | None) -> dict[str, HeaderValue]:
    """AMQP headers as str/int/bool values (pika hands out bytes for non-UTF-8 strings)."""
    headers: dict[str, HeaderValue] = {}
    for key, value in (raw or {}).items():
        if isinstance(value, bytes):
            headers[str(key)] = value.decode("utf-8", errors="replace")
        elif isinstance(value, bool | int | str):
            headers[str(key)] = value
        else:
            headers[str(key)] = str(value)
    return headers


class _RabbitDelivery(Delivery):
    """A delivery settled on the channel it came from (on the consuming thread)."""

    def __init__(self, channel: Any, queue: str, method: Any, props: Any, body: bytes) -> None:
        self.queue = queue
        self.message_id = str(props.message_id or "")
        self.body = body
        self.headers = decode_headers(props.headers)
        self.content_type = str(props.content_type or "")
        self.type = str(props.type or "")
        self.redelivered = bool(method.redelivered)
        self._channel = channel
        self._tag = int(method.delivery_tag)
        self._settled = False

    def __repr__(self) -> str:
        return f"<RabbitMQ delivery {self.message_id!r} from {self.queue!r}>"

    def ack(self) -> None:
        self._settle("ack", lambda: self._channel.basic_ack(self._tag))

    def nack(self, *, requeue: bool = True) -> None:
        self._settle("nack", lambda: self._channel.basic_nack(self._tag, requeue=requeue))

    def _settle(self, how: str, action: Callable[[], None]) -> None:
        if self._settled:
            raise QueueError(f"message {self.message_id!r} from {self.queue!r} is already settled")
        self._settled = True
        try:
            action()
        except _PIKA_ERRORS as exc:
            # The channel is gone, so the broker has requeued the message already.
            LOGGER.warning(
                "cannot %s message %r from %r (%s): it will be delivered again",
                how,
                self.message_id,
                self.queue,
                type(exc).__name__,
            )


class RabbitMQConsumer(QueueConsumer):
    """Yields deliveries from several queues; reconnects (with backoff) when the broker goes.

    The connection is serviced (heartbeats included) only while the caller waits for the next
    delivery: handling one message for longer than about two ``heartbeat`` intervals gets
    the connection closed by the broker, and the message is delivered again. Use a larger
    ``heartbeat`` (or 0 to disable) for slow handlers.
    """

    def __init__(
        self,
        url: str,
        *,
        heartbeat: int = 30,
        retry: RetryPolicy = RetryPolicy(),  # noqa: B008 - frozen dataclass, safe as a default
        connect_timeout: float = 10.0,
        ca_file: str | None = None,
    ) -> None:
        self._redactor = BrokerRedactor(url)
        self.broker = self._redactor.broker
        self.retry = retry
        self._params = connection_parameters(
            url,
            heartbeat=heartbeat,
            connect_timeout=connect_timeout,
            name="factflow-replay consumer",
            ca_file=ca_file,
        )
        self._connection: Any = None

    def __repr__(self) -> str:
        return f"RabbitMQConsumer(broker={self.broker!r})"

    def _connect(self) -> Any:
        if self._connection is None or not self._connection.is_open:
            self._drop()
            try:
                self._connection = pika.BlockingConnection(self._params)
            except _PIKA_ERRORS as exc:
                raise connect_failure(exc, self._redactor) from None
        return self._connection

    def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None and connection.is_open:
            try:
                connection.close()
            except _PIKA_ERRORS as exc:
                LOGGER.debug("closing %s: %s", self.broker, self._redactor.describe(exc))

    def declare_queue(self, queue: str) -> None:
        failures = 0
        while True:
            try:
                channel = self._connect().channel()
                channel.queue_declare(queue, durable=True)
                channel.close()
            except pika.exceptions.ChannelClosedByBroker as exc:
                refusal = channel_refusal(exc, self._redactor)
                if refusal is not None:
                    what = f"declare queue {queue!r}"
                    raise broker_error(self.broker, what, refusal, 0) from None
                raise QueueError(
                    f"{self.broker} refused to declare queue {queue!r}: "
                    f"({exc.reply_code}) {self._redactor.scrub(exc.reply_text)}"
                ) from None
            except _PIKA_ERRORS as exc:
                lost = ConnectionLost(self._redactor.describe(exc))
                failures = self._retry(lost, failures, what=f"declare queue {queue!r}")
            except ConnectionLost as lost:
                failures = self._retry(lost, failures, what=f"declare queue {queue!r}")
            else:
                return

    def _retry(
        self, lost: ConnectionLost, failures: int, *, what: str, stop: threading.Event | None = None
    ) -> int:
        self._drop()
        if not lost.retryable or failures >= self.retry.max_retries:
            raise broker_error(self.broker, what, lost, failures)
        delay = self.retry.delay(failures)
        LOGGER.warning("%s: %s; reconnecting in %.1f s", self.broker, lost.reason, delay)
        (stop or threading.Event()).wait(delay)
        return failures + 1

    def _subscribe(
        self, queues: Sequence[str], prefetch: int, inbox: deque[_RabbitDelivery]
    ) -> Any:
        channel = self._connect().channel()
        for queue in queues:
            try:
                channel.queue_declare(queue, passive=True)
            except pika.exceptions.ChannelClosedByBroker as exc:
                if exc.reply_code == 404:
                    raise QueueNotFoundError(queue, self.broker) from None
                raise
        channel.basic_qos(prefetch_count=prefetch)
        for queue in queues:

            def on_message(ch: Any, method: Any, props: Any, body: bytes, q: str = queue) -> None:
                inbox.append(_RabbitDelivery(ch, q, method, props, body))

            channel.basic_consume(queue, on_message_callback=on_message)
        return channel

    def _poll(self, channel: Any, inbox: deque[_RabbitDelivery]) -> None:
        """Wait a little for deliveries unless some are waiting; notice a closed channel."""
        if not channel.is_open:
            # Whatever is still in the inbox is back in the queue already.
            raise ConnectionLost("the connection or channel was closed")
        if not inbox:
            self._connection.process_data_events(time_limit=_POLL_SECONDS)

    def consume(
        self, queues: Sequence[str], *, stop: threading.Event, prefetch: int = 16
    ) -> Iterator[Delivery]:
        failures = 0
        while not stop.is_set():
            inbox: deque[_RabbitDelivery] = deque()
            channel: Any = None
            try:
                channel = self._subscribe(queues, prefetch, inbox)
                failures = 0
                while not stop.is_set():
                    self._poll(channel, inbox)
                    if inbox and not stop.is_set():
                        yield inbox.popleft()
            except _PIKA_ERRORS as exc:
                lost = channel_refusal(exc, self._redactor) or ConnectionLost(
                    self._redactor.describe(exc)
                )
                failures = self._retry(lost, failures, what="consume", stop=stop)
            except ConnectionLost as lost:
                failures = self._retry(lost, failures, what="consume", stop=stop)
            finally:
                # Closing the channel hands unsettled deliveries back to the broker.
                if channel is not None and channel.is_open:
                    try:
                        channel.close()
                    except _PIKA_ERRORS as exc:
                        LOGGER.debug("closing channel: %s", self._redactor.describe(exc))

    def close(self) -> None:
        self._drop()
