"""Leases of the embedded queue: claiming messages, settling deliveries, releasing leftovers."""

from __future__ import annotations

__all__ = ["LEASE_MARGIN", "EmbeddedDelivery", "LeaseBook"]

import json
import logging
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal, TypeVar

from factflow_replay_dagster.errors import QueueError
from factflow_replay_dagster.queues._embedded_acks import AckGroup
from factflow_replay_dagster.queues._embedded_db import write_transaction
from factflow_replay_dagster.queues.base import Delivery, HeaderValue

logger = logging.getLogger(__name__)

Settlement = Literal["ack", "requeue", "dead"]
T = TypeVar("T")

#: A claimed delivery whose lease ends within this many seconds (at most a tenth of the
#: lease) is released, not handed out.
LEASE_MARGIN = 1.0

_READY = (
    "SELECT seq FROM messages WHERE queue = ? AND (leased_until IS NULL OR leased_until <= ?)"
    " ORDER BY seq LIMIT ?"
)
#: Leases the listed messages under one token (``{marks}``: only ``?`` placeholders).
_LEASE = (
    "UPDATE messages SET lease_token = ?, leased_until = ?, delivery_count = delivery_count + 1"
    " WHERE seq IN ({marks}) RETURNING seq, queue, message_id, body, headers, content_type,"
    " type, delivery_count"
)
#: Deletes the listed messages still leased under one token; returns those it deleted.
_ACK_MANY = "DELETE FROM messages WHERE lease_token = ? AND seq IN ({marks}) RETURNING seq"
#: Most seqs bound in one statement (SQLite allows 32,766 variables).
_CHUNK = 500
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
        """Delete the message (grouped with other acks: committed within ``ack_delay``).

        Raises ``QueueError`` if its lease was lost meanwhile: at once when the lease had
        expired or was about to, else from the call after the grouped commit found it lost.
        """
        self._book.settle(self, "ack")

    def nack(self, *, requeue: bool = True) -> None:
        """Release the message for redelivery, or move it to the ``dead`` table."""
        self._book.settle(self, "requeue" if requeue else "dead")


class LeaseBook:
    """The leases one :class:`~.embedded.EmbeddedQueue` object holds, across its threads.

    Every write here is one transaction that also commits the pending grouped acks
    (:class:`~._embedded_acks.AckGroup`): a claim, a nack or a release costs no extra fsync
    for them.
    """

    def __init__(
        self,
        connection: Callable[[], sqlite3.Connection],
        broker: str,
        *,
        lease_seconds: float,
        ack_delay: float,
    ) -> None:
        self._connection = connection
        self._broker = broker
        self._lock = threading.Lock()
        self._held: dict[tuple[int, str], EmbeddedDelivery] = {}
        #: A claimed delivery whose lease ends within this many seconds is not handed out.
        self.margin = min(LEASE_MARGIN, lease_seconds / 10)
        self.acks = AckGroup(broker, delay=ack_delay, flush=self.flush)
        # An ack is grouped only while its lease outlives the group's delay with room to spare:
        # otherwise it is committed at once, so its own call reports a lost lease.
        self._group_margin = self.margin + ack_delay

    def _write(self, action: str, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work`` in one write transaction that first commits every pending ack."""
        acks = self.acks.take()
        try:
            conn = self._connection()
            with write_transaction(conn):
                lost = _delete_acked(conn, acks) if acks else []
                result = work(conn)
        except sqlite3.Error as exc:
            self.acks.restore(acks)
            raise QueueError(f"embedded queue {self._broker}: {action} failed: {exc}") from exc
        except BaseException:
            self.acks.restore(acks)  # not committed: tried again with the next write
            raise
        self.acks.lost(lost)
        return result

    def claim(
        self, queues: Sequence[str], limit: int, lease_seconds: float
    ) -> list[EmbeddedDelivery]:
        """Lease up to ``limit`` ready messages of ``queues``, oldest first, in one transaction.

        The deliveries of one claim share a lease token: a lease is ``(seq, token)``.
        """
        now = time.time()
        until = now + lease_seconds
        token = secrets.token_hex(16)

        def lease(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
            ready: list[int] = []
            for queue in queues:
                ready.extend(seq for (seq,) in conn.execute(_READY, (queue, now, limit)))
            if len(queues) > 1:
                ready = sorted(ready)[:limit]
            rows: list[tuple[Any, ...]] = []
            for chunk in _chunks(ready):
                sql = _LEASE.format(marks=",".join("?" * len(chunk)))
                rows.extend(conn.execute(sql, (token, until, *chunk)))
            return rows

        rows = self._write(f"claiming messages from {', '.join(map(repr, queues))}", lease)
        rows.sort(key=lambda row: int(row[0]))  # RETURNING promises no order
        claimed = [self._delivery(token, until, row) for row in rows]
        with self._lock:
            self._held.update(((d.seq, token), d) for d in claimed)
        return claimed

    def _delivery(self, token: str, until: float, row: tuple[Any, ...]) -> EmbeddedDelivery:
        seq, queue, message_id, body, headers, content_type, type_, count = row
        return EmbeddedDelivery(
            self,
            seq=int(seq),
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
        """Ack, requeue or bury ``delivery`` if it still holds its lease (see the module doc).

        An ack is grouped (recorded now, committed soon with others) unless grouping is off
        or its lease ends within ``ack_delay`` plus the margin. Grouped acks that failed
        earlier are raised first, before this call does anything.
        """
        self.acks.raise_failures()
        if delivery.settled:
            raise QueueError(
                f"message {delivery.message_id!r} from queue {delivery.queue!r} on "
                f"{self._broker} was already settled"
            )
        if (
            how == "ack"
            and self.acks.delay > 0
            and delivery.leased_until - time.time() > self._group_margin
        ):
            self._forget([delivery])
            if self.acks.add(delivery):
                self._flush_quietly()
            return
        key = (delivery.seq, delivery.lease_token)

        def apply(conn: sqlite3.Connection) -> int:
            if how == "ack":
                return int(conn.execute(_ACK, key).rowcount)
            if how == "requeue":
                return int(conn.execute(_REQUEUE, (0, *key)).rowcount)
            done = int(conn.execute(_BURY, (time.time(), *key)).rowcount)
            conn.execute(_ACK, key)
            return done

        done = self._write(
            f"settling message {delivery.message_id!r} of queue {delivery.queue!r} ({how})", apply
        )
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

    def flush(self) -> None:
        """Commit the pending grouped acks now, in one transaction."""
        if self.acks.pending:
            self._write("committing grouped acks", _nothing)

    def _flush_quietly(self) -> None:
        try:
            self.flush()
        except QueueError as exc:  # the acks stay pending: the next write or the thread retries
            logger.warning("embedded queue %s: %s", self._broker, exc)

    def release(self, deliveries: Iterable[EmbeddedDelivery]) -> None:
        """Give up the leases of ``deliveries`` still held, so they are ready again at once.

        Pending acks are committed in the same transaction. A claim never handed out does not
        count as a delivery (``redelivered`` stays false). Failures are logged only: the leases
        then simply expire (and the acks stay pending).
        """
        pending = [d for d in deliveries if not d.settled]
        if not pending and not self.acks.pending:
            return
        rows = [(int(not d.handed_out), d.seq, d.lease_token) for d in pending]
        try:
            self._write(f"releasing {len(pending)} leases", lambda c: c.executemany(_REQUEUE, rows))
        except QueueError as exc:
            logger.warning("%s (the leases expire on their own)", exc)
        self._forget(pending)

    def close(self) -> None:
        """Stop the ack thread, commit pending acks and release every lease still held.

        Acks that still cannot be committed become failures for :meth:`raise_failures`.
        """
        self.acks.stop()
        with self._lock:
            held = list(self._held.values())
        if held:
            logger.debug(
                "embedded queue %s: releasing %d unsettled leases", self._broker, len(held)
            )
        self.release(held)
        self.acks.abandon()

    def _forget(self, deliveries: Iterable[EmbeddedDelivery]) -> None:
        with self._lock:
            for delivery in deliveries:
                delivery.settled = True
                self._held.pop((delivery.seq, delivery.lease_token), None)


def _nothing(_conn: sqlite3.Connection) -> None:
    """The work of a transaction that only commits pending acks."""


def _chunks(seqs: Sequence[int]) -> Iterable[Sequence[int]]:
    for start in range(0, len(seqs), _CHUNK):
        yield seqs[start : start + _CHUNK]


def _delete_acked(
    conn: sqlite3.Connection, acks: Sequence[EmbeddedDelivery]
) -> list[EmbeddedDelivery]:
    """Delete the messages of ``acks`` still under their lease; return the ones that were not."""
    by_token: dict[str, list[int]] = {}
    for delivery in acks:
        by_token.setdefault(delivery.lease_token, []).append(delivery.seq)
    deleted: set[tuple[int, str]] = set()
    for token, seqs in by_token.items():
        for chunk in _chunks(seqs):
            sql = _ACK_MANY.format(marks=",".join("?" * len(chunk)))
            deleted.update((int(seq), token) for (seq,) in conn.execute(sql, (token, *chunk)))
    return [d for d in acks if (d.seq, d.lease_token) not in deleted]
