"""Grouped acks of the embedded queue: many acks share one commit, so one fsync.

An ack is a ``DELETE`` that must be durable, and a durable commit costs an fsync. One commit
per ack capped a consumer at the disk's fsync rate (a few hundred to a couple of thousand
messages a second). So :class:`AckGroup` holds acks in memory and they are committed
together: with the consumer's next write transaction (its next claim, a nack, a release),
when more than ``limit`` (the prefetch) are pending, by a small thread ``delay`` seconds
after the first one was recorded, on close, and when the process exits normally.

Until then the message is still leased in the file: a crash redelivers it once the lease
expires (at least once, never lost). A grouped ack whose lease turns out to be lost when it
is committed is reported as a :class:`~factflow_replay_dagster.errors.QueueError` by the
next call (see :meth:`AckGroup.raise_failures`); an ack whose lease is about to expire is not
grouped at all (see :class:`~._embedded_delivery.LeaseBook`), so that only happens when the
queue was purged or a commit was held up for longer than the lease had left.
"""

from __future__ import annotations

__all__ = ["AckGroup"]

import atexit
import logging
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from factflow_replay_dagster.errors import QueueError

if TYPE_CHECKING:
    from factflow_replay_dagster.queues._embedded_delivery import EmbeddedDelivery

logger = logging.getLogger(__name__)

#: The commit thread ends after this long without acks (a new ack starts another).
_IDLE_SECONDS = 2.0
#: After a failed commit, the thread waits this long before trying again.
_RETRY_SECONDS = 1.0
#: How many message ids an error names before it just counts the rest.
_NAMED = 5

_LIVE: weakref.WeakSet[AckGroup] = weakref.WeakSet()


class AckGroup:
    """Acks recorded but not yet committed, the thread that commits them in time, and the
    failures still to report.

    ``flush`` commits what :meth:`take` returns (in one transaction), giving back with
    :meth:`restore` what it could not commit and reporting lost leases through :meth:`lost`.
    """

    def __init__(self, broker: str, *, delay: float, flush: Callable[[], None]) -> None:
        self.broker = broker
        #: Longest time an ack waits for company before the thread commits it.
        self.delay = delay
        #: More pending acks than this make the acking thread commit at once. Set to the
        #: consumer's prefetch: a consumer that acks as it goes commits its acks with its next
        #: claim, once per ``prefetch`` messages; the limit only bounds other patterns.
        self.limit = 16
        self._flush = flush
        self._cond = threading.Condition()
        self._pending: list[EmbeddedDelivery] = []
        self._since = 0.0
        self._failures: list[str] = []
        self._thread: threading.Thread | None = None
        self._stopping = False
        _LIVE.add(self)

    @property
    def pending(self) -> int:
        return len(self._pending)

    def add(self, delivery: EmbeddedDelivery) -> bool:
        """Record an ack; True when more than ``limit`` are pending (the caller commits)."""
        with self._cond:
            if not self._pending:
                self._since = time.monotonic()
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._run, name="factflow-embedded-acks", daemon=True
                    )
                    self._thread.start()
                else:
                    self._cond.notify()
            self._pending.append(delivery)
            return len(self._pending) > self.limit

    def take(self) -> list[EmbeddedDelivery]:
        """Every pending ack, for the caller's transaction to commit."""
        with self._cond:
            taken, self._pending = self._pending, []
        return taken

    def restore(self, acks: Sequence[EmbeddedDelivery]) -> None:
        """Put back acks a transaction took but did not commit; they are tried again."""
        if not acks:
            return
        with self._cond:
            if not self._pending:
                self._since = time.monotonic()
            self._pending[:0] = acks
            self._cond.notify()

    # -- failures -----------------------------------------------------------------------

    def lost(self, deliveries: Sequence[EmbeddedDelivery]) -> None:
        """Grouped acks found without their lease at commit: keep an error for the next call."""
        if deliveries:
            self._fail(
                f"{self._describe(deliveries)} not committed: the lease was lost first (it "
                "expired and the message was claimed again, or the queue was purged), so it "
                "is delivered again"
            )

    def abandon(self) -> None:
        """The queue is closing: pending acks that still could not be committed are failures."""
        left = self.take()
        if left:
            self._fail(
                f"{self._describe(left)} not committed before closing; the message is "
                "delivered again once its lease expires"
            )

    def _describe(self, deliveries: Sequence[EmbeddedDelivery]) -> str:
        ids = ", ".join(repr(d.message_id) for d in deliveries[:_NAMED])
        if len(deliveries) > _NAMED:
            ids += f" and {len(deliveries) - _NAMED} more"
        queues = ", ".join(sorted({repr(d.queue) for d in deliveries}))
        if len(deliveries) == 1:
            return f"embedded queue {self.broker}: the ack of message {ids} of queue {queues} was"
        return (
            f"embedded queue {self.broker}: the acks of {len(deliveries)} messages ({ids}) of "
            f"queue {queues} were"
        )

    def _fail(self, text: str) -> None:
        logger.warning("%s", text)
        with self._cond:
            self._failures.append(text)

    def raise_failures(self) -> None:
        """Raise (once) a ``QueueError`` for grouped acks that failed since the last call."""
        if not self._failures:
            return
        with self._cond:
            failures, self._failures = self._failures, []
        raise QueueError("; ".join(failures))

    # -- the commit thread ------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._commit_in_time()
        finally:
            with self._cond:
                if self._thread is threading.current_thread():
                    self._thread = None  # the next ack starts another

    def _commit_in_time(self) -> None:
        idle_until = time.monotonic() + _IDLE_SECONDS
        while True:
            with self._cond:
                while True:
                    now = time.monotonic()
                    if self._stopping or (not self._pending and now >= idle_until):
                        return
                    if self._pending and now >= self._since + self.delay:
                        break
                    due = self._since + self.delay if self._pending else idle_until
                    self._cond.wait(due - now)
            try:
                self._flush()
            except QueueError as exc:
                logger.warning(
                    "embedded queue %s: committing grouped acks failed, trying again: %s",
                    self.broker,
                    exc,
                )
                with self._cond:
                    if not self._stopping:
                        self._cond.wait(_RETRY_SECONDS)
            idle_until = time.monotonic() + _IDLE_SECONDS

    def stop(self) -> None:
        """End the commit thread (after its current commit); a later ack starts a new one."""
        with self._cond:
            thread = self._thread
            self._stopping = True
            self._cond.notify_all()
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        with self._cond:
            self._stopping = False
            self._thread = None

    def flush_at_exit(self) -> None:
        if self._pending:
            try:
                self._flush()
            except QueueError as exc:  # pragma: no cover - the process is ending anyway
                logger.warning(
                    "embedded queue %s: acks not committed at exit, their messages will be "
                    "delivered again: %s",
                    self.broker,
                    exc,
                )


@atexit.register
def _flush_all() -> None:
    """A process that ends without closing its queue still commits its last acks."""
    for group in list(_LIVE):
        group.flush_at_exit()
