"""A durable queue in one SQLite file: the zero-setup broker for local use and the demo.

Same contract as RabbitMQ: a message counts as sent once its insert is committed
(WAL, ``synchronous=FULL``); publishing to an undeclared queue fails before anything is
inserted; delivery is at least once, through leases. A consumer claims a message by setting
a random ``lease_token`` and ``leased_until``; an ack deletes the row only while that token
is still there. A consumer that dies holds its leases until they expire (``lease_seconds``);
then the messages are delivered again.

Choices:

* Acks are grouped, as RabbitMQ's are asynchronous: :meth:`EmbeddedDelivery.ack` records
  the ack and it is committed with others, in one transaction (one fsync), at the latest
  ``ack_delay`` seconds later (0.05 s by default; see ``_embedded_acks``). Until then the
  message stays leased in the file: a crash delivers it again, never loses it. Ending the
  iteration, :meth:`EmbeddedQueue.close`, ``depth``, ``dead_count`` and ``purge`` commit this
  object's pending acks first. ``ack_delay=0`` commits every ack on its own.
* Settling a delivery whose lease was lost (it expired and another consumer claimed the
  message, or the queue was purged) raises :class:`~factflow_replay_dagster.errors.QueueError`
  for :meth:`~EmbeddedDelivery.ack` and ``nack(requeue=False)``, as RabbitMQ refuses an
  unknown delivery tag. An ack is committed at once (and its own call raises) when its lease
  ends within ``ack_delay`` plus a margin; a grouped ack that its commit finds lost anyway
  (the queue was purged, or the commit waited longer than the lease had left) raises from
  the next call of this object: the consuming iteration's next step, the next
  ``ack``/``nack``, or :meth:`~EmbeddedQueue.close`. That call does nothing else first (close
  still closes). ``nack(requeue=True)`` of a lost lease only logs: the message is being
  delivered again, which is what was asked.
* ``nack(requeue=False)`` moves the message to the ``dead`` table (see :meth:`dead_count`);
  nacks are committed at once, together with the pending acks.
* Settling the same delivery twice raises ``QueueError``.
* A handler that runs longer than ``lease_seconds`` (60 s by default) sees its message
  delivered again elsewhere; raise ``lease_seconds`` for slow handlers.
"""

from __future__ import annotations

__all__ = ["EmbeddedDelivery", "EmbeddedQueue"]

import json
import logging
import sqlite3
import threading
import time
import weakref
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from factflow_replay_dagster.errors import InvalidInputError, QueueError, QueueNotFoundError
from factflow_replay_dagster.ids import validate_id
from factflow_replay_dagster.queues import _embedded_db as db
from factflow_replay_dagster.queues._embedded_delivery import EmbeddedDelivery, LeaseBook
from factflow_replay_dagster.queues._pacing import Pacer
from factflow_replay_dagster.queues.base import (
    BlockedCallback,
    ConfirmCallback,
    OutgoingMessage,
    PublishOutcome,
    QueueConsumer,
    QueuePublisher,
    StopCallback,
)
from factflow_replay_dagster.settings import DEFAULTS

logger = logging.getLogger(__name__)

#: A pending batch older than this is committed when the next message arrives, so a slow
#: message source still sees its messages confirmed promptly.
_MAX_BATCH_DELAY = 0.5
#: With ``rate``, a pending batch is committed before a pacing sleep only if that would
#: leave it waiting this long: a slow rate still confirms each message at once, a fast one
#: (whose sleeps are a fraction of a millisecond) does not pay an fsync per message.
_PACED_BATCH_DELAY = 0.05
#: Headers as stored: compact JSON, one encoder for every message (``json.dumps`` with
#: options builds a new one per call).
_encode_headers = json.JSONEncoder(separators=(",", ":")).encode
#: Longest sleep between polls of an empty queue.
_MAX_POLL_INTERVAL = 0.5


class EmbeddedQueue(QueuePublisher, QueueConsumer):
    """Publisher and consumer over one SQLite file; safe across threads and processes.

    Each thread gets its own connection. Nothing is opened until first use; the file, its
    directory and the schema are then created if missing. ``batch_size`` messages are
    published per commit; an ack waits at most ``ack_delay`` seconds to share a commit with
    others (0: every ack is its own commit).
    """

    def __init__(
        self,
        path: Path | str,
        *,
        lease_seconds: float = DEFAULTS.embedded_lease_seconds,
        max_message_bytes: int = DEFAULTS.broker_max_message_bytes,
        poll_interval: float = 0.05,
        batch_size: int = 200,
        ack_delay: float = 0.05,
    ) -> None:
        if lease_seconds <= 0 or poll_interval <= 0 or batch_size < 1 or not ack_delay >= 0:
            raise InvalidInputError(
                "EmbeddedQueue needs lease_seconds > 0, poll_interval > 0, batch_size >= 1 and "
                f"ack_delay >= 0 (got {lease_seconds}, {poll_interval}, {batch_size}, {ack_delay})"
            )
        self.path = Path(path).expanduser().resolve()
        self.broker = f"embedded:{self.path}"
        self.lease_seconds = float(lease_seconds)
        self.max_message_bytes = max_message_bytes
        self.poll_interval = float(poll_interval)
        self.batch_size = int(batch_size)
        self.ack_delay = float(ack_delay)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: weakref.WeakSet[db.Connection] = weakref.WeakSet()
        self._generation = 0
        self._schema_ready = False
        self._leases = LeaseBook(
            self._connection,
            self.broker,
            lease_seconds=self.lease_seconds,
            ack_delay=self.ack_delay,
        )

    def __repr__(self) -> str:
        return f"EmbeddedQueue({str(self.path)!r})"

    # -- connections --------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        """This thread's connection, opened (and the schema ensured) on first use."""
        conn: db.Connection | None = getattr(self._local, "conn", None)
        if conn is not None and getattr(self._local, "generation", -1) == self._generation:
            return conn
        conn = db.connect(self.path, self.broker)
        with self._lock:
            if not self._schema_ready:
                try:
                    db.ensure_schema(conn, self.broker)
                except QueueError:
                    conn.close()
                    raise
                self._schema_ready = True
            self._connections.add(conn)
            self._local.conn = conn
            self._local.generation = self._generation
        return conn

    def _fail(self, action: str, exc: sqlite3.Error, *, confirmed: int = 0) -> QueueError:
        return QueueError(
            f"embedded queue {self.broker}: {action} failed: {exc}", confirmed=confirmed
        )

    def close(self) -> None:
        """Commit pending acks, release unsettled leases (redelivered at once), close
        connections; then raise ``QueueError`` for grouped acks that failed and were not
        reported yet.

        Using the queue again afterwards opens new connections.
        """
        try:
            self._leases.close()
        finally:
            with self._lock:
                connections, self._connections = list(self._connections), weakref.WeakSet()
                self._generation += 1
            for conn in connections:
                try:
                    conn.close()
                except sqlite3.Error as exc:  # pragma: no cover - closing is best effort
                    logger.warning("embedded queue %s: closing failed: %s", self.broker, exc)
        self._leases.acks.raise_failures()

    # -- queues -------------------------------------------------------------------------

    def declare_queue(self, queue: str) -> None:
        """Create ``queue`` if it does not exist (idempotent)."""
        validate_id(queue, kind="queue")
        conn = self._connection()
        try:
            with db.write_transaction(conn):
                cursor = conn.execute(
                    "INSERT OR IGNORE INTO queues (name, created_at) VALUES (?, ?)",
                    (queue, time.time()),
                )
        except sqlite3.Error as exc:
            raise self._fail(f"declaring queue {queue!r}", exc) from exc
        if cursor.rowcount:
            logger.info("embedded queue %s: declared queue %r", self.broker, queue)

    def check_connection(self) -> None:
        """Open the queue's database and read it."""
        try:
            self._connection().execute("SELECT 1 FROM queues LIMIT 1").fetchall()
        except sqlite3.Error as exc:
            raise self._fail("opening the queue", exc) from exc

    def check_queue(self, queue: str) -> None:
        """Raise :class:`QueueNotFoundError` unless ``queue`` was declared."""
        try:
            row = self._connection().execute("SELECT 1 FROM queues WHERE name = ?", (queue,))
            found = row.fetchone() is not None
        except sqlite3.Error as exc:
            raise self._fail(f"checking queue {queue!r}", exc) from exc
        if not found:
            raise QueueNotFoundError(queue, self.broker)

    def queues(self) -> list[str]:
        """The declared queues, sorted by name."""
        try:
            rows = self._connection().execute("SELECT name FROM queues ORDER BY name").fetchall()
        except sqlite3.Error as exc:
            raise self._fail("listing queues", exc) from exc
        return [str(name) for (name,) in rows]

    def depth(self, queue: str) -> int:
        """How many messages ``queue`` holds, ready or leased (not settled, not dead)."""
        return self._count("messages", queue)

    def dead_count(self, queue: str) -> int:
        """How many messages of ``queue`` were rejected with ``nack(requeue=False)``."""
        return self._count("dead", queue)

    def _count(self, table: str, queue: str) -> int:
        self.check_queue(queue)
        self._leases.flush()  # this object's own acks are counted as done
        try:
            sql = f"SELECT count(*) FROM {table} WHERE queue = ?"  # noqa: S608 - fixed names
            return int(self._connection().execute(sql, (queue,)).fetchone()[0])
        except sqlite3.Error as exc:
            raise self._fail(f"counting {table} of queue {queue!r}", exc) from exc

    def purge(self, queue: str) -> int:
        """Delete every message of ``queue``, leased ones too; return how many went."""
        self.check_queue(queue)
        self._leases.flush()  # this object's acks are not lost leases
        conn = self._connection()
        try:
            with db.write_transaction(conn):
                purged = conn.execute("DELETE FROM messages WHERE queue = ?", (queue,)).rowcount
        except sqlite3.Error as exc:
            raise self._fail(f"purging queue {queue!r}", exc) from exc
        logger.info("embedded queue %s: purged %d messages from %r", self.broker, purged, queue)
        return int(purged)

    # -- publishing ---------------------------------------------------------------------

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
        """Insert ``messages`` in committed batches of ``batch_size``; see the base class
        (a SQLite file never blocks publishers: ``on_blocked`` is never called).

        A batch is also committed when a message arrives more than ``_MAX_BATCH_DELAY``
        seconds after the batch's first, so a slow message source does not hold
        confirmations back, and before a rate-limit sleep that would make it older than
        ``_PACED_BATCH_DELAY``.
        """
        pacer = Pacer(rate)
        self.check_queue(queue)
        conn = self._connection()
        pending: list[OutgoingMessage] = []
        pending_since = 0.0
        confirmed = 0
        last_position: str | None = None

        def flush() -> None:
            nonlocal confirmed, last_position
            if not pending:
                return
            batch = list(pending)
            pending.clear()
            try:
                self._insert(conn, queue, batch)
            except sqlite3.Error as exc:
                raise self._fail(
                    f"publishing {len(batch)} messages to {queue!r}", exc, confirmed=confirmed
                ) from exc
            confirmed += len(batch)
            positions = (m.position for m in reversed(batch) if m.position is not None)
            last_position = next(positions, last_position)
            if on_confirmed is not None:
                on_confirmed(batch)

        stopped = False
        for message in messages:
            if should_stop is not None and should_stop():
                stopped = True
                break
            if pacer.limited and (wait := pacer.delay()) > 0:
                if time.monotonic() + wait - pending_since >= _PACED_BATCH_DELAY:
                    flush()  # what is pending is confirmed before a wait that matters
                time.sleep(wait)
            pacer.sent()
            if not pending:
                pending_since = time.monotonic()
            pending.append(message)
            if len(pending) >= self.batch_size or (
                time.monotonic() - pending_since >= _MAX_BATCH_DELAY
            ):
                flush()
        flush()
        if stopped:
            logger.info(
                "embedded queue %s: publishing to %r stopped after %d messages",
                self.broker,
                queue,
                confirmed,
            )
        return PublishOutcome(confirmed=confirmed, stopped=stopped, last_position=last_position)

    @staticmethod
    def _insert(conn: sqlite3.Connection, queue: str, batch: Sequence[OutgoingMessage]) -> None:
        now = time.time()
        rows = [
            (
                queue,
                m.message_id,
                bytes(m.body),
                _encode_headers(m.headers),
                m.content_type,
                m.type,
                now,
            )
            for m in batch
        ]
        with db.write_transaction(conn):
            conn.executemany(
                "INSERT INTO messages (queue, message_id, body, headers, content_type, type,"
                " enqueued_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                rows,
            )

    # -- consuming ----------------------------------------------------------------------

    def consume(
        self, queues: Sequence[str], *, stop: threading.Event, prefetch: int = 16
    ) -> Iterator[EmbeddedDelivery]:
        """Yield deliveries from ``queues`` (FIFO by publish order across them) until ``stop``.

        At most ``prefetch`` deliveries are unsettled at a time; they are claimed together in
        one transaction, which also commits the acks recorded since the last one (see
        ``ack_delay``). Claimed deliveries not yet yielded are released, and pending acks
        committed, when the iteration ends; yielded, unsettled ones are released when
        :meth:`close` is called or their lease expires. A grouped ack found lost when it was
        committed raises ``QueueError`` from the next step of the iteration.
        """
        names = list(dict.fromkeys(queues))
        if not names:
            raise InvalidInputError("consume needs at least one queue")
        if prefetch < 1:
            raise InvalidInputError(f"prefetch must be at least 1, not {prefetch}")
        for name in names:
            self.check_queue(name)
        return self._consume(names, stop, prefetch)

    def _consume(
        self, names: list[str], stop: threading.Event, prefetch: int
    ) -> Iterator[EmbeddedDelivery]:
        leases, acks = self._leases, self._leases.acks
        acks.limit = prefetch
        buffer: deque[EmbeddedDelivery] = deque()
        outstanding: list[EmbeddedDelivery] = []
        delay = self.poll_interval
        try:
            while not stop.is_set():
                acks.raise_failures()
                if not buffer:
                    outstanding = [d for d in outstanding if not d.settled]
                    room = prefetch - len(outstanding)
                    if room > 0:
                        buffer.extend(leases.claim(names, room, self.lease_seconds))
                    if not buffer:
                        stop.wait(delay)
                        delay = min(delay * 2, max(_MAX_POLL_INTERVAL, self.poll_interval))
                        continue
                    delay = self.poll_interval
                delivery = buffer.popleft()
                if delivery.leased_until - time.time() < leases.margin:
                    # Too late to hand out: let the next claim (ours or another's) take it.
                    leases.release([delivery])
                    continue
                delivery.handed_out = True
                outstanding.append(delivery)
                yield delivery
        finally:
            # Stopped (or abandoned): one transaction commits pending acks and gives back
            # what was claimed but not handed out.
            leases.release(buffer)
            buffer.clear()
        acks.raise_failures()
