"""Drive one pika ``SelectConnection`` and its confirm channel in steps, in the caller's thread."""

from __future__ import annotations

__all__ = ["ConfirmSession"]

import contextlib
import time
from collections.abc import Callable
from typing import Any

import pika
import pika.exceptions
import pika.spec
from pika.adapters.select_connection import IOLoop, SelectConnection

from ..errors import QueueError
from ._coalescing import coalesce_writes
from ._rabbitmq_common import (
    LOGGER,
    BrokerRedactor,
    ConnectionLost,
    channel_refusal,
    connect_failure,
)


def _noop() -> None:
    """A timer callback whose only job is to wake the poller up."""


class ConfirmSession:
    """A connection with one channel in confirm mode, driven only when the caller calls in.

    Nothing runs in the background: :meth:`turn` polls the socket once (waiting at most
    ``max_wait`` seconds, or until the next pika timer such as the heartbeat) and dispatches
    what arrived to the callbacks. pika callbacks only record state; every decision (and
    every user callback) is taken by the caller between turns. ``generation`` increases each
    time a new confirm channel opens, whose delivery tags start again at 1.

    ``blocked`` is the broker's reason while it blocks this connection (RabbitMQ's
    ``Connection.Blocked``, sent when a memory or disk alarm stops it reading from
    publishers), None otherwise; a new connection starts unblocked.
    """

    def __init__(
        self, params: pika.URLParameters, *, timeout: float, redactor: BrokerRedactor
    ) -> None:
        self._params = params
        self._timeout = timeout
        self._redactor = redactor
        self._ioloop: IOLoop | None = None
        self._conn: Any = None
        self._channel: Any = None
        self._lost: ConnectionLost | None = None
        self._channel_error: BaseException | None = None
        self._declaring = False
        self.blocked: str | None = None
        self.generation = 0
        self.next_tag = 1
        #: Called with (delivery_tag, multiple, ack) for each Basic.Ack / Basic.Nack.
        self.on_confirm: Callable[[int, bool, bool], None] = lambda tag, multiple, ack: None
        #: Called with the message_id of each message the broker returned as unroutable.
        self.on_return: Callable[[str], None] = lambda message_id: None

    # -- driving -----------------------------------------------------------------------------

    def _loop(self) -> IOLoop:
        if self._ioloop is None:
            self._ioloop = IOLoop()
            self._ioloop.activate_poller()
        return self._ioloop

    def turn(self, max_wait: float | None = None, *, check: bool = True) -> None:
        """Poll once (at most ``max_wait`` s), dispatch events, raise ConnectionLost if lost."""
        loop = self._loop()
        timer = loop.call_later(max(max_wait, 0.0), _noop) if max_wait is not None else None
        try:
            loop.poll()
            loop.process_timeouts()
        finally:
            if timer is not None:
                loop.remove_timeout(timer)
        if check:
            self._raise_if_lost()

    def pause(self, seconds: float) -> None:
        """Wait ``seconds`` on the ioloop (pika timers still run), ignoring connection state."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self.turn(left, check=False)

    def _run_until(self, done: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + self._timeout
        while not done():
            left = deadline - time.monotonic()
            if left <= 0:
                raise ConnectionLost(f"no answer within {self._timeout:g} s while {what}")
            self.turn(left)

    def _raise_if_lost(self) -> None:
        if self._lost is not None:
            raise self._lost
        if self._channel_error is not None and not self._declaring:
            error = self._channel_error
            refusal = channel_refusal(error, self._redactor)
            if refusal is not None:  # 403 ACCESS_REFUSED: a permission the user lacks
                raise refusal
            # 406 PRECONDITION_FAILED (a message above the broker's max_message_size, ...):
            # sending the same messages again on a new channel would fail the same way.
            refused = isinstance(error, pika.exceptions.ChannelClosedByBroker) and (
                error.reply_code == 406
            )
            raise ConnectionLost(
                f"channel closed: {self._redactor.describe(error)}", retryable=not refused
            )

    # -- connection and channel --------------------------------------------------------------

    def open(self) -> None:
        """Make sure the connection and its confirm channel are open (connecting if needed)."""
        if self._conn is not None and self._lost is None:
            try:
                self.turn(0)  # notice a connection the broker closed while we were idle
            except ConnectionLost as lost:
                LOGGER.info("connection to %s was closed (%s)", self._redactor.broker, lost)
                self.reset()
        if self._conn is None or self._lost is not None or not self._conn.is_open:
            self.reset()
            self._connect()
        if self._channel is None or not self._channel.is_open:
            self._open_channel()

    def _connect(self) -> None:
        opened: list[object] = []

        def on_open(conn: object) -> None:
            opened.append(conn)

        def on_open_error(conn: object, exc: BaseException) -> None:
            if conn is self._conn:
                self._lost = connect_failure(exc, self._redactor)

        def on_close(conn: object, exc: BaseException) -> None:
            if conn is self._conn and self._lost is None:
                self._lost = ConnectionLost(f"connection lost: {self._redactor.describe(exc)}")

        self._lost = None
        self.blocked = None
        self._conn = SelectConnection(
            self._params,
            on_open_callback=on_open,
            on_open_error_callback=on_open_error,
            on_close_callback=on_close,
            custom_ioloop=self._loop(),
        )
        self._conn.add_on_connection_blocked_callback(self._on_blocked)
        self._conn.add_on_connection_unblocked_callback(self._on_unblocked)
        self._run_until(lambda: bool(opened), f"connecting to {self._redactor.broker}")
        coalesced = coalesce_writes(self._conn)
        LOGGER.debug(
            "connected to %s (frames joined per write: %s)", self._redactor.broker, coalesced
        )

    def _open_channel(self) -> None:
        opened: list[object] = []
        selected: list[object] = []
        self._channel_error = None
        channel = self._conn.channel(on_open_callback=opened.append)
        self._channel = channel
        channel.add_on_close_callback(self._on_channel_closed)
        channel.add_on_return_callback(self._on_return)
        self._run_until(lambda: bool(opened), "opening a channel")
        channel.confirm_delivery(ack_nack_callback=self._on_ack_nack, callback=selected.append)
        self._run_until(lambda: bool(selected), "enabling publisher confirms")
        self.generation += 1
        self.next_tag = 1

    def _on_blocked(self, conn: object, frame: Any) -> None:
        if conn is self._conn:
            self.blocked = str(getattr(frame.method, "reason", "") or "no reason given")
            LOGGER.info("%s blocks publishing: %s", self._redactor.broker, self.blocked)

    def _on_unblocked(self, conn: object, frame: Any) -> None:
        if conn is self._conn:
            self.blocked = None
            LOGGER.info("%s accepts messages again", self._redactor.broker)

    def _on_channel_closed(self, channel: object, exc: BaseException) -> None:
        if channel is self._channel:
            self._channel_error = exc

    def _on_ack_nack(self, frame: Any) -> None:
        method = frame.method
        ack = isinstance(method, pika.spec.Basic.Ack)
        self.on_confirm(int(method.delivery_tag), bool(method.multiple), ack)

    def _on_return(self, channel: object, method: Any, properties: Any, body: bytes) -> None:
        LOGGER.debug("broker returned a message: %s %s", method.reply_code, method.reply_text)
        self.on_return(str(properties.message_id or ""))

    # -- operations --------------------------------------------------------------------------

    def declare(self, queue: str, *, passive: bool) -> bool:
        """Declare ``queue`` (durable; ``passive`` only checks it); False if it does not exist."""
        self.open()
        done: list[object] = []
        self._declaring = True
        try:
            self._channel.queue_declare(queue, passive=passive, durable=True, callback=done.append)
            self._run_until(
                lambda: bool(done) or self._channel_error is not None, f"declaring {queue!r}"
            )
        finally:
            self._declaring = False
        if done:
            return True
        error, self._channel, self._channel_error = self._channel_error, None, None
        refusal = channel_refusal(error, self._redactor)
        if refusal is not None:
            raise refusal
        if isinstance(error, pika.exceptions.ChannelClosedByBroker):
            if error.reply_code == 404:
                return False
            raise QueueError(
                f"{self._redactor.broker} refused to declare queue {queue!r}: "
                f"{self._redactor.scrub(f'({error.reply_code}) {error.reply_text}')}"
            )
        raise ConnectionLost(f"channel closed while declaring {queue!r}: {error}")

    def publish(self, queue: str, body: bytes, properties: pika.BasicProperties) -> int:
        """Send one persistent ``mandatory`` message; return its delivery tag."""
        self._raise_if_lost()
        if self._channel is None:
            raise ConnectionLost("no open channel")
        try:
            self._channel.basic_publish("", queue, body, properties, mandatory=True)
        except (pika.exceptions.AMQPConnectionError, pika.exceptions.AMQPChannelError) as exc:
            raise ConnectionLost(f"cannot publish: {self._redactor.describe(exc)}") from None
        tag = self.next_tag
        self.next_tag += 1
        return tag

    # -- teardown ----------------------------------------------------------------------------

    def reset(self, *, linger: float = 1.0) -> None:
        """Drop the connection (closing it politely for at most ``linger`` s)."""
        conn, self._conn, self._channel = self._conn, None, None
        self._lost = self._channel_error = None
        self.blocked = None
        if conn is None or conn.is_closed:
            return
        with contextlib.suppress(pika.exceptions.AMQPError):
            if not conn.is_closing:
                conn.close()
            deadline = time.monotonic() + linger
            while not conn.is_closed and time.monotonic() < deadline:
                self.turn(deadline - time.monotonic(), check=False)

    def close(self) -> None:
        """Close the connection and release the ioloop; :meth:`open` starts afresh."""
        self.reset()
        if self._ioloop is not None:
            self._ioloop.close()
            self._ioloop = None
