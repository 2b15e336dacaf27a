"""Grouped acks of the embedded queue: committed in time, redelivered after a crash, lost
leases still reported."""

from __future__ import annotations

__all__: list[str] = []

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.servers._proc import wait_until

from factflow_replay_dagster.errors import InvalidInputError, QueueError
from factflow_replay_dagster.queues.base import OutgoingMessage
from factflow_replay_dagster.queues.embedded import EmbeddedDelivery, EmbeddedQueue

#: Generous bound for a helper process or a wait; only a hang ever gets near it.
TIMEOUT = 60
#: Long enough that nothing is committed by the ack thread while a test looks.
NEVER = 600.0


def msgs(count: int) -> Iterator[OutgoingMessage]:
    for i in range(count):
        yield OutgoingMessage(message_id=f"m{i:05d}", body=f"body {i}".encode(), headers={"n": i})


def stored(path: Path) -> int:
    """Messages in the file as another connection sees it (committed state only)."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return int(conn.execute("SELECT count(*) FROM messages").fetchone()[0])


def pull(deliveries: Iterator[EmbeddedDelivery], count: int) -> list[EmbeddedDelivery]:
    return [next(deliveries) for _ in range(count)]


@pytest.fixture
def path(tmp_path: Path) -> Path:
    queue = EmbeddedQueue(tmp_path / "queue.db")
    queue.declare_queue("jobs")
    queue.publish("jobs", msgs(20))
    queue.close()
    return tmp_path / "queue.db"


# -- when grouped acks are committed -------------------------------------------------------


def test_ending_the_iteration_commits_pending_acks(path: Path) -> None:
    queue = EmbeddedQueue(path, lease_seconds=3600, ack_delay=NEVER)
    stop = threading.Event()
    # prefetch 5: when it stops, nothing is left to release, only acks to commit.
    for n, delivery in enumerate(queue.consume(["jobs"], stop=stop, prefetch=5), start=1):
        delivery.ack()
        if n == 5:
            assert stored(path) == 20  # recorded, not committed yet
            stop.set()
    assert stored(path) == 15
    queue.close()
    assert stored(path) == 15


def test_close_commits_pending_acks(path: Path) -> None:
    queue = EmbeddedQueue(path, lease_seconds=3600, ack_delay=NEVER)
    deliveries = queue.consume(["jobs"], stop=threading.Event(), prefetch=50)
    got = pull(deliveries, 8)
    for delivery in got[:5]:
        delivery.ack()
    assert stored(path) == 20
    queue.close()  # acks committed, the 3 unacked and 12 claimed but not handed out released
    assert stored(path) == 15
    again = EmbeddedQueue(path)
    rest = pull(again.consume(["jobs"], stop=threading.Event()), 15)
    assert [d.message_id for d in rest] == [f"m{i:05d}" for i in range(5, 20)]
    assert [d.redelivered for d in rest[:4]] == [True, True, True, False]
    again.close()


def test_the_ack_thread_commits_within_ack_delay(path: Path) -> None:
    queue = EmbeddedQueue(path, lease_seconds=3600, ack_delay=0.05)
    deliveries = queue.consume(["jobs"], stop=threading.Event(), prefetch=50)
    for delivery in pull(deliveries, 3):
        delivery.ack()
    # The consumer makes no further call: the thread commits on its own.
    assert wait_until(lambda: stored(path) == 17, timeout=TIMEOUT, interval=0.01)
    queue.close()


def test_more_than_prefetch_pending_acks_are_committed_by_the_acking_thread(path: Path) -> None:
    # Two iterations on one object: acks pile up without a claim to carry them.
    queue = EmbeddedQueue(path, lease_seconds=3600, ack_delay=NEVER)
    first = pull(queue.consume(["jobs"], stop=threading.Event(), prefetch=3), 3)
    second = pull(queue.consume(["jobs"], stop=threading.Event(), prefetch=3), 3)
    for delivery in first:
        delivery.ack()
    assert stored(path) == 20  # 3 pending: not more than the prefetch
    second[0].ack()
    assert stored(path) == 16  # 4 pending: committed by that ack
    queue.close()


def test_reads_of_the_same_object_see_its_own_acks(path: Path) -> None:
    queue = EmbeddedQueue(path, lease_seconds=3600, ack_delay=NEVER)
    deliveries = queue.consume(["jobs"], stop=threading.Event(), prefetch=50)
    for delivery in pull(deliveries, 4):
        delivery.ack()
    assert queue.depth("jobs") == 16 == stored(path)
    (fifth,) = pull(deliveries, 1)
    fifth.ack()
    assert queue.purge("jobs") == 15  # the acked one is not purged (nor a lost lease)
    queue.close()


def test_ack_delay_zero_commits_every_ack_on_its_own(path: Path) -> None:
    with pytest.raises(InvalidInputError, match="ack_delay"):
        EmbeddedQueue(path, ack_delay=-1)
    queue = EmbeddedQueue(path, ack_delay=0)
    deliveries = queue.consume(["jobs"], stop=threading.Event(), prefetch=50)
    for n, delivery in enumerate(pull(deliveries, 3), start=1):
        delivery.ack()
        assert stored(path) == 20 - n
    queue.close()


def test_nack_commits_pending_acks_with_it(path: Path) -> None:
    queue = EmbeddedQueue(path, lease_seconds=3600, ack_delay=NEVER)
    deliveries = queue.consume(["jobs"], stop=threading.Event(), prefetch=50)
    first, second, third = pull(deliveries, 3)
    first.ack()
    second.ack()
    third.nack(requeue=False)
    assert stored(path) == 17
    assert queue.dead_count("jobs") == 1
    queue.close()


# -- a crash with acks pending ---------------------------------------------------------------

_ACK_THEN_HANG = textwrap.dedent(
    """
    import os, sys, threading, time
    from factflow_replay_dagster.queues.embedded import EmbeddedQueue

    path, out, go, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    queue = EmbeddedQueue(path, lease_seconds=4.0, ack_delay=0.2, poll_interval=0.01)
    deliveries = queue.consume(["jobs"], stop=threading.Event(), prefetch=50)
    first = next(deliveries)  # claims 50 in one transaction

    def note(line):
        with open(out, "a") as record:
            record.write(line + "\\n")
            record.flush()
            os.fsync(record.fileno())

    note("CLAIMED")
    while not os.path.exists(go):  # the test now holds the write lock
        time.sleep(0.01)
    acked = [first, *(next(deliveries) for _ in range(count - 1))]
    for delivery in acked:
        delivery.ack()  # grouped: returns at once, commit pending
    note(" ".join(d.message_id for d in acked))
    note("HOLDING")
    threading.Event().wait()  # hold everything until killed
    """
)


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_a_consumer_killed_with_acks_pending_gets_them_redelivered(tmp_path: Path) -> None:
    path, out, go = tmp_path / "queue.db", tmp_path / "out.txt", tmp_path / "go"
    queue = EmbeddedQueue(path)
    queue.declare_queue("jobs")
    queue.publish("jobs", msgs(200))
    queue.close()

    proc = subprocess.Popen(
        [sys.executable, "-c", _ACK_THEN_HANG, str(path), str(out), str(go), "30"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert wait_until(lambda: "CLAIMED" in lines(out), timeout=TIMEOUT, interval=0.01)
        with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as lock:
            # Hold the write lock from before the first ack until after the kill, so no
            # commit (not even the ack thread's, due 0.2 s after the first ack) gets through.
            lock.execute("BEGIN IMMEDIATE")
            go.touch()
            assert wait_until(lambda: "HOLDING" in lines(out), timeout=TIMEOUT, interval=0.01)
            time.sleep(0.4)  # the ack thread is now waiting for the lock
            os.kill(proc.pid, signal.SIGKILL)
            proc.communicate(timeout=TIMEOUT)
            lock.execute("ROLLBACK")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    acked = lines(out)[1].split()
    assert acked == [f"m{i:05d}" for i in range(30)]
    assert stored(path) == 200  # none of those acks was committed

    # Once the dead consumer's leases expire, everything comes again; nothing is lost.
    queue = EmbeddedQueue(path, poll_interval=0.01)
    stop = threading.Event()
    got: list[EmbeddedDelivery] = []
    timer = threading.Timer(TIMEOUT, stop.set)
    timer.start()
    for delivery in queue.consume(["jobs"], stop=stop, prefetch=64):
        got.append(delivery)
        delivery.ack()
        if len(got) == 200:
            stop.set()
    timer.cancel()
    assert sorted(d.message_id for d in got) == [f"m{i:05d}" for i in range(200)]
    again = {d.message_id for d in got if d.redelivered}
    assert set(acked) <= again  # acked before the crash, so delivered again: at least once
    assert len(again) == 50  # exactly the claim the dead consumer held
    assert queue.depth("jobs") == 0
    queue.close()


_ACK_THEN_EXIT = textwrap.dedent(
    """
    import sys, threading
    from factflow_replay_dagster.queues.embedded import EmbeddedQueue

    queue = EmbeddedQueue(sys.argv[1], lease_seconds=3600, ack_delay=600)
    stop, held = threading.Event(), []
    for delivery in queue.consume(["jobs"], stop=stop, prefetch=50):
        held.append(delivery)
        if len(held) == 12:
            stop.set()
    for delivery in held:  # acked after the iteration ended: nothing else commits them
        delivery.ack()
    # Exits normally without closing the queue.
    """
)


def test_a_process_that_exits_without_closing_still_commits_its_acks(path: Path) -> None:
    subprocess.run(
        [sys.executable, "-c", _ACK_THEN_EXIT, str(path)],
        check=True,
        capture_output=True,
        timeout=TIMEOUT,
    )
    assert stored(path) == 8


# -- lost leases ---------------------------------------------------------------------------


def test_a_grouped_ack_of_a_purged_message_raises_from_the_next_step(path: Path) -> None:
    queue = EmbeddedQueue(path, lease_seconds=3600, ack_delay=NEVER, poll_interval=0.01)
    stop = threading.Event()
    timer = threading.Timer(TIMEOUT, stop.set)  # only a hang gets near it
    timer.start()
    deliveries = queue.consume(["jobs"], stop=stop, prefetch=1)
    (first,) = pull(deliveries, 1)
    first.ack()  # grouped: the lease has an hour left
    EmbeddedQueue(path).purge("jobs")  # another object: the row goes with its lease
    with pytest.raises(
        QueueError, match=r"ack of message 'm00000' of queue 'jobs'.*lease was lost"
    ):
        next(deliveries)  # its claim committed the ack and found the lease gone
    timer.cancel()
    queue.close()  # reported once: nothing left to raise


def test_a_grouped_ack_that_nobody_calls_after_raises_from_close(path: Path) -> None:
    queue = EmbeddedQueue(path, lease_seconds=3600, ack_delay=NEVER)
    (first,) = pull(queue.consume(["jobs"], stop=threading.Event(), prefetch=1), 1)
    first.ack()
    EmbeddedQueue(path).purge("jobs")
    with pytest.raises(QueueError, match=r"'m00000'.*lease was lost"):
        queue.close()
    queue.close()  # closed, and reported only once


def test_a_grouped_ack_whose_commit_came_after_the_lease_expired_is_reported(
    path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    queue = EmbeddedQueue(path, lease_seconds=1.0, ack_delay=0.2, poll_interval=0.01)
    deliveries = queue.consume(["jobs"], stop=threading.Event(), prefetch=2)
    first, second = pull(deliveries, 2)
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as other:
        other.execute("BEGIN IMMEDIATE")  # the ack thread's commit now waits for this
        first.ack()  # grouped: the lease has about a second left
        time.sleep(max(first.leased_until - time.time(), 0) + 0.1)
        # The lease expired meanwhile and another consumer claimed the message.
        other.execute(
            "UPDATE messages SET lease_token = 'other', leased_until = ? WHERE message_id = ?",
            (time.time() + 3600, first.message_id),
        )
        other.execute("COMMIT")
    assert wait_until(lambda: "'m00000'" in caplog.text, timeout=TIMEOUT, interval=0.01)
    # The next call reports it, and does nothing else...
    with pytest.raises(QueueError, match=r"ack of message 'm00000'.*lease was lost"):
        second.ack()
    assert not second.settled
    second.ack()  # ...so it can simply be called again (the expired lease was not taken)
    assert stored(path) == 19  # m00000 is with the other consumer, m00001 is gone
    queue.close()
