"""What the broker fault and security tests add to :mod:`support.faults`: faults fired from a
replay's own progress, and independent consumers fast enough for 20,000 messages."""

from __future__ import annotations

__all__ = ["QUEUE", "FaultAt", "consume_until_cancelled", "receive", "replay_of"]

import threading
import uuid
from collections.abc import Callable, Iterable

import pika

from factflow_replay_dagster.messages import ARTEFACT_TYPE, END_TYPE
from factflow_replay_dagster.replay import ReplayProgress, ReplayRequest

from .faults import Received

#: The queue the ``news`` snapshot routes ``enrich`` to: where the replays of a stored
#: parent's ``parse`` artefacts go.
QUEUE = "news.enrich"


def replay_of(parent: str, reason: str, **extra: object) -> ReplayRequest:
    """The replay of ``parent``'s ``parse`` artefacts into ``enrich``, with an id of its own."""
    return ReplayRequest.parse(
        {
            "source_execution_id": parent,
            "from_stage": "parse",
            "to_route": "enrich",
            "reason": reason,
            "replay_id": f"replay-{reason.replace(' ', '-')}-{uuid.uuid4().hex[:6]}",
            **extra,
        }
    )


class FaultAt:
    """A replay's ``on_progress`` that fires ``fault(update)`` (in the publishing thread, so
    the publisher is paused meanwhile) the first time progress reaches each threshold: a
    fault strikes mid-replay, whatever the machine's speed."""

    def __init__(self, thresholds: Iterable[int], fault: Callable[[ReplayProgress], None]) -> None:
        self.pending = sorted(thresholds)
        self.fault = fault
        self.fired: list[int] = []

    def __call__(self, update: ReplayProgress) -> None:
        if self.pending and update.confirmed >= self.pending[0]:
            self.pending.pop(0)
            self.fired.append(update.confirmed)
            self.fault(update)


class _Taken:
    def __init__(self) -> None:
        self.ids: list[str] = []
        self.ends = 0

    def add(self, properties: pika.BasicProperties) -> None:
        if properties.type == ARTEFACT_TYPE:
            self.ids.append(str(properties.message_id))
        elif properties.type == END_TYPE:
            self.ends += 1

    def received(self) -> Received:
        return Received(self.ids, self.ends)


def receive(url: str, queue: str, *, patience: float = 60.0) -> Received:
    """Every message ``queue`` holds now, taken with plain pika: an independent consumer, as
    :func:`support.faults.consume`, but through one consumer instead of a ``basic.get`` per
    message (20,000 in 2 s instead of 7-10 s here). It takes as many as the queue counts
    when it starts; ``patience`` bounds a silence in between (liveness only)."""
    taken = _Taken()
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        expected = int(channel.queue_declare(queue, passive=True).method.message_count)
        count = 0
        if expected:
            for method, properties, _body in channel.consume(
                queue, auto_ack=True, inactivity_timeout=patience
            ):
                if method is None:
                    raise AssertionError(f"{queue}: {expected - count} message(s) never came")
                taken.add(properties)
                count += 1
                if count == expected:
                    break
            channel.cancel()
    finally:
        connection.close()
    return taken.received()


def consume_until_cancelled(url: str, queue: str, ready: threading.Event) -> Received:
    """Consume ``queue`` (auto-ack) until the broker cancels the consumer (the queue was
    deleted); ``ready`` is set once the consumer is registered (at its first wake-up)."""
    taken = _Taken()
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        for method, properties, _body in channel.consume(
            queue, auto_ack=True, inactivity_timeout=0.2
        ):
            ready.set()
            if method is not None:
                taken.add(properties)
    finally:
        if connection.is_open:
            connection.close()
    return taken.received()
