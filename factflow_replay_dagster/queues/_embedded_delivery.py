"""Leases of the embedded queue: claiming messages, settling deliveries, releasing leftovers."""

from __future__ import annotations

__all__ = ["EmbeddedDelivery", "LeaseBook"]

import json
import logging
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal

from factflow_replay_dagster.errors import QueueError
from factflow_replay_dagster.queues._embedded_db import write_transaction
from factflow_replay_dagster.queues.base import Delivery, HeaderValue

logger = logging.getLogger(__name__)

Settlement = Literal["ack", "requeue", "dead"]

_READY = (
    "SELECT seq FROM messages WHERE queue = ? AND (leased_until IS NULL OR leased_until <= ?)"
    " ORDER BY seq LIMIT ?"
)
_LEASE = (
    "UPDATE messages SET lease_token = ?, leased_until = ?, delivery_count = delivery_count + 1"
    " WHERE seq = ? RETURNING queue, message_id, body, headers, content_type, type,"
    " delivery_count"
)
_ACK = "DELETE FROM messages WHERE seq = ? AND lease_token = ?"
_REQUEUE = (
    "UPDATE messages SET lease_token = NULL, leased_until = NULL,"
    " delivery_count = max(delivery_count - ?, 0) WHERE seq = ? AND lease_token = ?"
)
_BURY = (
    "INSERT INTO dead (seq, queue, message_id, body, headers, content_type, type, enqueued_at,"
    " delivery_count, dead_at) SELECT seq, queue, message_id, body, headers, content_type, type,"
    " enqueued_at, delivery_count, ? FROM messages WHERE seq = ? AND lease_token = ?"
)


class EmbeddedDelivery(Delivery):
    """One leased message; :meth:`ack` deletes it only while this lease is still its lease."""

    def __init__(
        self,
        book: LeaseBook,
        *,
        seq: int,
        lease_token: str,
        leased_until: float,
        queue: str,
        message_id: str,
        body: bytes,
        headers: dict[str, HeaderValue],
        content_type: str,
        type: str,  # the attribute name the Delivery interface defines
        delivery_count: int,
    ) -> None:
        self._book = book
        self.seq = seq
        self.lease_token = lease_token
        self.leased_until = leased_until
        self.queue = queue
        self.message_id = message_id
        self.body = body
        self.headers = headers
        self.content_type = content_type
        self.type = type
        self.delivery_count = delivery_count
        self.redelivered = delivery_count > 1
        self.settled = False
        #: Set once the consumer has handed it out; a release then counts it as delivered.
        self.handed_out = False

    def __repr__(self) -> str:
        return (
            f"EmbeddedDelivery(queue={self.queue!r}, message_id={self.message_id!r}, "
            f"seq={self.seq}, delivery_count={self.delivery_count}, settled={self.settled})"
        )

    def ack(self) -> None:
        """Delete the message; raise ``QueueError`` if its lease was lost meanwhile."""
        self._book.settle(self, "ack")

    def nack(self, *, requeue: bool = True) -> None:
        """Release the message for redelivery, or move it to the ``dead`` table."""
        self._book.settle(self, "requeue" if requeue else "dead")


class LeaseBook:
    """The leases one :class:`~.embedded.EmbeddedQueue` object holds, across its threads."""

    def __init__(self, connection: Callable[[], sqlite3.Connection], broker: str) -> None:
        self._connection = connection
        self._broker = broker
        self._lock = threading.Lock()
        self._held: dict[str, EmbeddedDelivery] = {}

    def claim(
        self, queues: Sequence[str], limit: int, lease_seconds: float
    ) -> list[EmbeddedDelivery]:
        """Lease up to ``limit`` ready messages of ``queues``, oldest first, in one transaction."""
        conn = self._connection()
        now = time.time()
        until = now + lease_seconds
        claimed: list[EmbeddedDelivery] = []
        try:
            with write_transaction(conn):
                ready: list[int] = []
                for queue in queues:
                    ready.extend(seq for (seq,) in conn.execute(_READY, (queue, now, limit)))
                for seq in sorted(ready)[:limit]:
                    token = secrets.token_hex(16)
                    row = conn.execute(_LEASE, (token, until, seq)).fetchone()
                    claimed.append(self._delivery(seq, token, until, row))
        except sqlite3.Error as exc:
            raise QueueError(
                f"embedded queue {self._broker}: claiming messages from "
                f"{', '.join(map(repr, queues))} failed: {exc}"
            ) from exc
        with self._lock:
            self._held.update((d.lease_token, d) for d in claimed)
        return claimed

    def _delivery(
        self, seq: int, token: str, until: float, row: tuple[Any, ...]
    ) -> EmbeddedDelivery:
        queue, message_id, body, headers, content_type, type_, count = row
        return EmbeddedDelivery(
            self,
            seq=seq,
            lease_token=token,
            leased_until=until,
            queue=str(queue),
            message_id=str(message_id),
            body=bytes(body),
            headers=json.loads(str(headers)),
            content_type=str(content_type),
            type=str(type_),
            delivery_count=int(count),
        )

    def settle(self, delivery: EmbeddedDelivery, how: Settlement) -> None:
        """Ack, requeue or bury ``delivery`` if it still holds its lease (see the module doc)."""
        if delivery.settled:
            raise QueueError(
                f"message {delivery.message_id!r} from queue {delivery.queue!r} on "
                f"{self._broker} was already settled"
            )
        conn = self._connection()
        key = (delivery.seq, delivery.lease_token)
        try:
            with write_transaction(conn):
                if how == "ack":
                    done = conn.execute(_ACK, key).rowcount
                elif how == "requeue":
                    done = conn.execute(_REQUEUE, (0, *key)).rowcount
                else:
                    done = conn.execute(_BURY, (time.time(), *key)).rowcount
                    conn.execute(_ACK, key)
        except sqlite3.Error as exc:
            raise QueueError(
                f"embedded queue {self._broker}: settling message {delivery.message_id!r} "
                f"of queue {delivery.queue!r} ({how}) failed: {exc}"
            ) from exc
        self._forget([delivery])
        if done:
            return
        lost = (
            f"the lease on message {delivery.message_id!r} of queue {delivery.queue!r} on "
            f"{self._broker} was lost (it expired after the consumer's lease time and the "
            "message was claimed again, or the queue was purged)"
        )
        if how == "requeue":
            logger.warning("%s; nack(requeue=True) had nothing left to do", lost)
            return
        raise QueueError(f"{lost}; it was not {'acked' if how == 'ack' else 'dead-lettered'}")

    def release(self, deliveries: Iterable[EmbeddedDelivery]) -> None:
        """Give up the leases of ``deliveries`` still held, so they are ready again at once.

        A claim never handed out does not count as a delivery (``redelivered`` stays false).
        Failures are logged only: the leases then simply expire.
        """
        pending = [d for d in deliveries if not d.settled]
        if not pending:
            return
        try:
            conn = self._connection()
            with write_transaction(conn):
                conn.executemany(
                    _REQUEUE, [(int(not d.handed_out), d.seq, d.lease_token) for d in pending]
                )
        except (sqlite3.Error, QueueError) as exc:
            logger.warning(
                "embedded queue %s: could not release %d leases (they expire on their own): %s",
                self._broker,
                len(pending),
                exc,
            )
        self._forget(pending)

    def release_all(self) -> None:
        """Release every lease still held (the queue object is being closed)."""
        with self._lock:
            held = list(self._held.values())
        if held:
            logger.debug(
                "embedded queue %s: releasing %d unsettled leases", self._broker, len(held)
            )
            self.release(held)

    def _forget(self, deliveries: Iterable[EmbeddedDelivery]) -> None:
        with self._lock:
            for delivery in deliveries:
                delivery.settled = True
                self._held.pop(delivery.lease_token, None)
