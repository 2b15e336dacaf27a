"""What broker fault and security tests share: a parent execution with many stored artefacts,
faults fired from the replay's own progress, and an independent consumer that counts what
arrived by message id and object key."""

from __future__ import annotations

__all__ = [
    "PARENT",
    "QUEUE",
    "FaultAt",
    "Received",
    "consume_until_cancelled",
    "receive",
    "stored_parent",
]

import hashlib
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import pika

from factflow_replay_dagster.connect import open_artefact_store, open_execution_store
from factflow_replay_dagster.executions import ExecutionStatus
from factflow_replay_dagster.layout import artefact_key
from factflow_replay_dagster.messages import Headers
from factflow_replay_dagster.pipelines import sample_config
from factflow_replay_dagster.replay import ReplayProgress
from factflow_replay_dagster.settings import Settings
from factflow_replay_dagster.snapshot import ConfigSnapshot
from factflow_replay_dagster.storage.local import LocalArtefactStore

#: The registered parent execution whose ``ingest/parse`` artefacts the tests replay.
PARENT = "parent-broker-faults"
#: The queue its snapshot routes ``enrich`` to.
QUEUE = "news.enrich"


def stored_parent(settings: Settings, *, count: int, size: int = 256) -> list[str]:
    """Store ``count`` artefacts of ``size`` bytes as ``PARENT``'s ``ingest/parse`` stage, in
    the settings' artefact store (written as files when it is a folder: fast), registered in
    its execution store; return their keys in key order."""
    keys = [artefact_key(PARENT, "ingest", "parse", f"doc-{i:06d}.json") for i in range(count)]
    with open_artefact_store(settings) as artefacts, open_execution_store(settings) as executions:
        for i, key in enumerate(keys):
            body = (f'{{"doc": {i}, "pad": "'.encode() + b"x" * size)[:size]
            if isinstance(artefacts, LocalArtefactStore):  # no temporary file and rename each
                path = artefacts.root / key
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(body)
            else:
                artefacts.write(key, body)
        snapshot = ConfigSnapshot.load(sample_config("news"))
        executions.create_execution(
            PARENT, snapshot, origin="registered", status=ExecutionStatus.REGISTERED
        )
        executions.record_stored_stage(
            PARENT, "ingest", "parse", count=count, size=count * size, keys=keys
        )
    return keys


class FaultAt:
    """A replay's ``on_progress`` that fires ``fault(confirmed)`` (in the publishing thread,
    so the publisher is paused meanwhile) the first time progress reaches each threshold:
    a fault strikes mid-replay, whatever the machine's speed."""

    def __init__(self, thresholds: Iterable[int], fault: Callable[[ReplayProgress], None]):
        self.pending = sorted(thresholds)
        self.fault = fault
        self.fired: list[int] = []
        self.updates: list[ReplayProgress] = []

    def __call__(self, update: ReplayProgress) -> None:
        self.updates.append(update)
        if self.pending and update.confirmed >= self.pending[0]:
            self.pending.pop(0)
            self.fired.append(update.confirmed)
            self.fault(update)


@dataclass
class Received:
    """Artefact messages an independent consumer got: by message id, and by object key."""

    ids: Counter[str] = field(default_factory=Counter)
    keys: Counter[str] = field(default_factory=Counter)
    #: Each message id's object key and body digest; every copy of an id must match it.
    copies: dict[str, tuple[str, str]] = field(default_factory=dict)
    mismatched: int = 0
    other: int = 0  # messages that are not artefacts (the end marker)

    def add(self, properties: pika.BasicProperties, body: bytes) -> None:
        if properties.type != "factflow.artefact":
            self.other += 1
            return
        message_id = str(properties.message_id)
        key = str((properties.headers or {}).get(Headers.OBJECT_KEY))
        copy = (key, hashlib.sha256(body).hexdigest())
        if self.copies.setdefault(message_id, copy) != copy:
            self.mismatched += 1
        self.ids[message_id] += 1
        self.keys[key] += 1

    def __ior__(self, other: Received) -> Received:
        for message_id, copy in other.copies.items():
            if self.copies.setdefault(message_id, copy) != copy:
                self.mismatched += 1
        self.ids.update(other.ids)
        self.keys.update(other.keys)
        self.mismatched += other.mismatched
        self.other += other.other
        return self

    @property
    def total(self) -> int:
        return sum(self.ids.values())

    @property
    def unique(self) -> int:
        return len(self.ids)

    @property
    def duplicates(self) -> int:
        """Copies beyond the first of each message id."""
        return self.total - self.unique

    def lost(self, expected_keys: Iterable[str]) -> list[str]:
        """The expected keys no message carried, in key order."""
        return sorted(set(expected_keys) - set(self.keys))


def receive(url: str, queue: str, *, patience: float = 60.0) -> Received:
    """Every message ``queue`` holds now, taken with plain pika (auto-ack): an independent
    consumer, nothing of the package's. It takes as many as the queue counts when it starts
    (no idle wait); ``patience`` bounds a silence in between (liveness only)."""
    got = Received()
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        expected = int(channel.queue_declare(queue, passive=True).method.message_count)
        if expected:
            for method, properties, body in channel.consume(
                queue, auto_ack=True, inactivity_timeout=patience
            ):
                if method is None:
                    raise AssertionError(f"{queue}: {expected - got.total - got.other} never came")
                got.add(properties, body)
                if got.total + got.other == expected:
                    break
            channel.cancel()
    finally:
        connection.close()
    return got


def consume_until_cancelled(url: str, queue: str, ready: threading.Event) -> Received:
    """Consume ``queue`` (auto-ack) until the broker cancels the consumer (the queue was
    deleted); ``ready`` is set once the consumer is registered (at its first wake-up)."""
    got = Received()
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        for method, properties, body in channel.consume(
            queue, auto_ack=True, inactivity_timeout=0.2
        ):
            ready.set()
            if method is not None:
                got.add(properties, body)
    finally:
        if connection.is_open:
            connection.close()
    return got
