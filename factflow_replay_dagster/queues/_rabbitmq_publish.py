"""One publish call on a confirm session: the window in flight, re-sends after a reconnect,
a broker that blocks publishers, and the failure that names the first refused message.

While the broker blocks the connection (``Connection.Blocked``: a memory or disk alarm) the
call sends nothing, sleeps in the poller and polls ``should_stop`` once a second.
"""

from __future__ import annotations

__all__ = ["Backoff", "PublishRun"]

from collections.abc import Callable, Iterable

import pika

from ..errors import MessageNackedError, QueueError, UnroutableMessageError
from ._confirm_window import ConfirmWindow, InFlight
from ._pacing import Pacer
from ._rabbitmq_common import LOGGER, ConnectionLost
from ._rabbitmq_session import ConfirmSession
from .base import (
    BlockedCallback,
    ConfirmCallback,
    OutgoingMessage,
    PublishOutcome,
    StopCallback,
)

Backoff = Callable[[ConnectionLost, int, int], int]
"""``(lost, failures, confirmed)``: wait before the next retry and return ``failures + 1``, or
raise the publisher's error (with ``confirmed``) once retries ran out."""

#: ``delivery_mode`` of a persistent message (pika's enum, resolved once).
_PERSISTENT = pika.DeliveryMode.Persistent.value
#: While the broker blocks publishing, wake up this often (s) to poll ``should_stop``.
_BLOCKED_POLL = 1.0


def _properties(message: OutgoingMessage) -> pika.BasicProperties:
    """The AMQP properties of ``message`` (its headers are encoded as they are, not copied)."""
    return pika.BasicProperties(
        delivery_mode=_PERSISTENT,
        message_id=message.message_id,
        content_type=message.content_type,
        type=message.type,
        headers=message.headers,
    )


class PublishRun:
    """The state of one :meth:`RabbitMQPublisher.publish` call."""

    def __init__(
        self,
        session: ConfirmSession,
        queue: str,
        source: Iterable[OutgoingMessage],
        *,
        broker: str,
        limit: int,
        backoff: Backoff,
        on_confirmed: ConfirmCallback | None,
        should_stop: StopCallback | None,
        rate: float | None,
        on_blocked: BlockedCallback | None = None,
    ) -> None:
        self.session = session
        self.broker = broker
        self.limit = limit
        self.backoff = backoff
        self.queue = queue
        self.source = iter(source)
        self.on_confirmed = on_confirmed
        self.should_stop = should_stop
        self.on_blocked = on_blocked
        self.blocked: str | None = None
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
                    self._notice_blocked()
                    wait = self._fill()
                    if self.window.unsettled == 0 and (
                        self.exhausted or self.stopped or self.window.failed
                    ):
                        return self._finish()
                    if self.stopped and self.blocked is not None:
                        return self._abandon()
                    self.session.turn(wait)
            except ConnectionLost as lost:
                self.session.reset()
                if self.window.failed:
                    self._raise_failure()
                failures = self.backoff(lost, failures, self.window.confirmed)

    def _resend(self) -> None:
        entries = self.window.for_resend()
        if entries:
            LOGGER.info(
                "re-sending %d unconfirmed message(s) to %r on %s",
                len(entries),
                self.queue,
                self.broker,
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

    def _notice_blocked(self) -> None:
        """Tell ``on_blocked`` when the broker starts or stops blocking this connection."""
        state = self.session.blocked
        if state != self.blocked:
            self.blocked = state
            if self.on_blocked is not None:
                self.on_blocked(state)

    def _abandon(self) -> PublishOutcome:
        """A stop while the broker blocks: its confirms cannot come, so stop without them."""
        unanswered = self.window.unsettled
        LOGGER.warning(
            "stopped while %s blocks publishing (%s): %d message(s) sent to %r are left "
            "unconfirmed and will be sent again by a resume",
            self.broker,
            self.blocked,
            unanswered,
            self.queue,
        )
        self.session.reset()
        return self._finish()

    def _fill(self) -> float | None:
        """Send until the window is full; return how long to wait for the rate, if it limits.

        While the broker blocks publishing nothing is sent, but ``should_stop`` is polled
        every ``_BLOCKED_POLL`` seconds.
        """
        if self.blocked is not None:
            if not self.stopped and self.should_stop is not None and self.should_stop():
                LOGGER.info("stop requested while %s blocks publishing", self.broker)
                self.stopped = True
            return _BLOCKED_POLL
        window, session, limit = self.window, self.session, self.limit
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
                f"publishing to queue {self.queue!r} on {self.broker} failed: the "
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
