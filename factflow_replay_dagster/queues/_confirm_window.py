"""Bookkeeping for messages in flight: publisher confirms in, contiguous confirmed runs out."""

from __future__ import annotations

__all__ = ["ConfirmWindow", "InFlight"]

from collections import deque
from enum import Enum

from .base import OutgoingMessage


class _State(Enum):
    PENDING = "pending"
    ACKED = "acked"
    NACKED = "nacked"
    RETURNED = "returned"


class InFlight:
    """One sent message, its delivery tag on the current channel, and what became of it."""

    __slots__ = ("message", "state", "tag")

    def __init__(self, message: OutgoingMessage, tag: int) -> None:
        self.message = message
        self.tag = tag
        self.state = _State.PENDING

    @property
    def failed(self) -> bool:
        return self.state in (_State.NACKED, _State.RETURNED)

    @property
    def returned(self) -> bool:
        return self.state is _State.RETURNED


class ConfirmWindow:
    """Sent messages in publish order until they are confirmed and handed back in order.

    Delivery tags on one channel are consecutive integers from 1, so a ``multiple`` ack
    settles every pending tag up to its own; each tag is visited once (``_floor`` remembers
    how far multiple acks reached). A returned message (unroutable) is followed by an ack
    from the broker; that ack must not count, so the entry leaves the tag index at once.
    """

    def __init__(self) -> None:
        self._entries: deque[InFlight] = deque()
        self._by_tag: dict[int, InFlight] = {}
        self._floor = 0
        self.confirmed = 0
        self.last_position: str | None = None
        self.failed = False

    def __len__(self) -> int:
        """Messages held: pending, and confirmed ones waiting behind a pending one."""
        return len(self._entries)

    @property
    def unsettled(self) -> int:
        """Messages the broker has not answered yet (on the current channel)."""
        return len(self._by_tag)

    def sent(self, message: OutgoingMessage, tag: int) -> None:
        entry = InFlight(message, tag)
        self._entries.append(entry)
        self._by_tag[tag] = entry

    def confirm(self, tag: int, multiple: bool, ack: bool) -> None:
        """Record a Basic.Ack (``ack``) or Basic.Nack for ``tag`` (and below, if ``multiple``)."""
        if multiple:
            for each in range(self._floor + 1, tag + 1):
                entry = self._by_tag.pop(each, None)
                if entry is not None:
                    self._settle(entry, ack)
            self._floor = max(self._floor, tag)
        else:
            entry = self._by_tag.pop(tag, None)
            if entry is not None:
                self._settle(entry, ack)

    def _settle(self, entry: InFlight, ack: bool) -> None:
        entry.state = _State.ACKED if ack else _State.NACKED
        if not ack:
            self.failed = True

    def returned(self, message_id: str) -> None:
        """The broker returned the (first pending) message with ``message_id``: unroutable."""
        for tag, entry in self._by_tag.items():
            if entry.message.message_id == message_id:
                del self._by_tag[tag]
                entry.state = _State.RETURNED
                self.failed = True
                return

    def take_confirmed(self) -> list[OutgoingMessage]:
        """Pop the confirmed messages at the front, in publish order, and count them."""
        run: list[OutgoingMessage] = []
        entries = self._entries
        while entries and entries[0].state is _State.ACKED:
            run.append(entries.popleft().message)
        if run:
            self.confirmed += len(run)
            for message in reversed(run):
                if message.position is not None:
                    self.last_position = message.position
                    break
        return run

    def front_failure(self) -> InFlight | None:
        """The first message in publish order that was nacked or returned, once it is first."""
        if self._entries and self._entries[0].failed:
            return self._entries[0]
        return None

    def for_resend(self) -> list[InFlight]:
        """After a reconnect: the unanswered messages, in order, to send again on a new channel."""
        pending = list(self._by_tag.values())
        self._by_tag.clear()
        self._floor = 0
        return pending

    def resent(self, entry: InFlight, tag: int) -> None:
        entry.tag = tag
        self._by_tag[tag] = entry
