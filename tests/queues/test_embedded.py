"""The embedded SQLite queue keeps RabbitMQ's promises: confirms, FIFO, leases, crash safety."""

from __future__ import annotations

__all__: list[str] = []

import contextlib
import itertools
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from support.servers._proc import wait_until

from factflow_replay_dagster.errors import (
    EXIT_BAD_INPUT,
    InvalidIdError,
    InvalidInputError,
    QueueError,
    QueueNotFoundError,
)
from factflow_replay_dagster.queues.base import OutgoingMessage
from factflow_replay_dagster.queues.embedded import EmbeddedDelivery, EmbeddedQueue

#: Generous bound for a helper process; only a hang ever gets near it.
PROC_TIMEOUT = 60


def msgs(count: int, *, start: int = 0, prefix: str = "m") -> Iterator[OutgoingMessage]:
    for i in range(start, start + count):
        yield OutgoingMessage(
            message_id=f"{prefix}{i:05d}",
            body=f"body {i}".encode(),
            headers={"n": i},
            position=f"key/{i:05d}",
        )


def take(
    queue: EmbeddedQueue, names: list[str], count: int, *, ack: bool = True, prefetch: int = 16
) -> list[EmbeddedDelivery]:
    """Receive ``count`` deliveries (acking them unless told not to), then stop consuming."""
    stop = threading.Event()
    got: list[EmbeddedDelivery] = []
    for delivery in queue.consume(names, stop=stop, prefetch=prefetch):
        got.append(delivery)
        if ack:
            delivery.ack()
        if len(got) == count:
            stop.set()
    return got


def rows(path: Path, sql: str) -> list[tuple[object, ...]]:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return conn.execute(sql).fetchall()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "queue.db"


@pytest.fixture
def queue(db_path: Path) -> Iterator[EmbeddedQueue]:
    q = EmbeddedQueue(db_path)
    q.declare_queue("jobs")
    yield q
    q.close()


# -- publishing and consuming ------------------------------------------------------------


def test_round_trip_preserves_everything(queue: EmbeddedQueue, db_path: Path) -> None:
    assert queue.broker == f"embedded:{db_path.resolve()}"
    sent = [
        OutgoingMessage(
            message_id="a-1",
            body=b"\x00\xffbinary",
            headers={"execution": "e1", "attempt": 2, "replayed": True},
            content_type="application/json",
            type="factflow.test",
        ),
        OutgoingMessage(message_id="a-2", body=b""),
    ]
    outcome = queue.publish("jobs", sent)
    assert outcome.confirmed == 2
    assert not outcome.stopped
    assert queue.depth("jobs") == 2

    got = take(queue, ["jobs"], 2)
    assert [(d.message_id, d.body, d.headers, d.content_type, d.type) for d in got] == [
        (m.message_id, m.body, m.headers, m.content_type, m.type) for m in sent
    ]
    assert all(d.queue == "jobs" and not d.redelivered for d in got)
    assert queue.depth("jobs") == 0


def test_fifo_within_and_across_queues(db_path: Path) -> None:
    queue = EmbeddedQueue(db_path, batch_size=7)
    queue.declare_queue("a")
    queue.declare_queue("b")
    queue.publish("a", msgs(150, prefix="a"))
    queue.publish("b", msgs(150, prefix="b"))
    queue.publish("a", msgs(10, start=150, prefix="a"))
    got = [d.message_id for d in take(queue, ["b", "a"], 310, prefetch=13)]
    expected = [m.message_id for m in [*msgs(150, prefix="a"), *msgs(150, prefix="b")]]
    assert got == [*expected, *(m.message_id for m in msgs(10, start=150, prefix="a"))]
    queue.close()


def test_missing_queue_fails_before_anything_is_inserted(
    queue: EmbeddedQueue, db_path: Path
) -> None:
    started = []

    def source() -> Iterator[OutgoingMessage]:
        started.append(True)
        yield from msgs(3)

    confirmed: list[OutgoingMessage] = []
    with pytest.raises(QueueNotFoundError) as info:
        queue.publish("nope", source(), on_confirmed=confirmed.extend)
    assert info.value.queue == "nope"
    assert info.value.broker == queue.broker
    assert info.value.exit_code == EXIT_BAD_INPUT
    assert "'nope'" in str(info.value)
    assert not started
    assert not confirmed
    assert rows(db_path, "SELECT count(*) FROM messages") == [(0,)]
    assert queue.queues() == ["jobs"]
    with pytest.raises(QueueNotFoundError):
        queue.consume(["jobs", "nope"], stop=threading.Event())
    with pytest.raises(QueueNotFoundError):
        queue.depth("nope")


def test_on_confirmed_sees_every_message_once_in_order(db_path: Path) -> None:
    queue = EmbeddedQueue(db_path, batch_size=7)
    queue.declare_queue("jobs")
    batches: list[list[str]] = []

    def on_confirmed(batch: Sequence[OutgoingMessage]) -> None:
        # A confirmed batch is committed: another connection already sees it.
        seen = rows(db_path, "SELECT message_id FROM messages ORDER BY seq")
        assert seen[-1] == (batch[-1].message_id,)
        batches.append([m.message_id for m in batch])

    outcome = queue.publish("jobs", msgs(50), on_confirmed=on_confirmed)
    flat = [i for batch in batches for i in batch]
    assert flat == [m.message_id for m in msgs(50)]
    assert all(1 <= len(b) <= 7 for b in batches)
    assert outcome.confirmed == 50
    assert outcome.last_position == "key/00049"
    queue.close()


def test_should_stop_ends_at_a_message_boundary(queue: EmbeddedQueue) -> None:
    confirmed: list[OutgoingMessage] = []
    polls = itertools.count()
    outcome = queue.publish(
        "jobs", msgs(100), on_confirmed=confirmed.extend, should_stop=lambda: next(polls) >= 10
    )
    assert outcome.stopped
    assert outcome.confirmed == 10 == len(confirmed) == queue.depth("jobs")
    assert outcome.last_position == "key/00009"
    assert [d.message_id for d in take(queue, ["jobs"], 10)] == [f"m{i:05d}" for i in range(10)]


def test_rate_limited_publish_confirms_everything(queue: EmbeddedQueue) -> None:
    batches: list[int] = []
    outcome = queue.publish(
        "jobs", msgs(20), rate=2000, on_confirmed=lambda b: batches.append(len(b))
    )
    assert outcome.confirmed == 20 == sum(batches)
    with pytest.raises(InvalidInputError):
        queue.publish("jobs", msgs(1), rate=0)


def test_threads_share_one_queue_object(queue: EmbeddedQueue) -> None:
    def publish(prefix: str) -> None:
        queue.publish("jobs", msgs(200, prefix=prefix))

    threads = [threading.Thread(target=publish, args=(f"t{n}-",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    got = [d.message_id for d in take(queue, ["jobs"], 800)]
    assert sorted(got) == sorted(f"t{n}-{i:05d}" for n in range(4) for i in range(200))
    for n in range(4):  # each publisher's own messages stay in order
        mine = [g for g in got if g.startswith(f"t{n}-")]
        assert mine == sorted(mine)


def test_queue_helpers(queue: EmbeddedQueue, db_path: Path) -> None:
    queue.declare_queue("jobs")  # idempotent
    queue.declare_queue("alpha")
    assert queue.queues() == ["alpha", "jobs"]
    queue.check_queue("alpha")
    with pytest.raises(InvalidIdError):
        queue.declare_queue("bad/name")
    queue.publish("jobs", msgs(5))
    take(queue, ["jobs"], 2, ack=False)
    assert queue.depth("jobs") == 5  # leased ones count
    assert queue.purge("jobs") == 5
    assert queue.depth("jobs") == 0
    assert rows(db_path, "PRAGMA journal_mode") == [("wal",)]
    assert rows(db_path, "PRAGMA user_version") == [(1,)]


def test_newer_schema_is_refused(db_path: Path) -> None:
    EmbeddedQueue(db_path).declare_queue("jobs")
    with sqlite3.connect(db_path) as conn:
        conn.execute("PRAGMA user_version = 99")
    with pytest.raises(QueueError, match="schema version 99"):
        EmbeddedQueue(db_path).queues()


def test_close_then_use_again(queue: EmbeddedQueue) -> None:
    queue.publish("jobs", msgs(3))
    queue.close()
    assert queue.depth("jobs") == 3


# -- settling and leases -----------------------------------------------------------------


def test_nack_requeue_redelivers_first_and_nack_without_requeue_dead_letters(
    queue: EmbeddedQueue,
) -> None:
    queue.publish("jobs", msgs(2))
    (first,) = take(queue, ["jobs"], 1, ack=False)
    first.nack()
    (again,) = take(queue, ["jobs"], 1, ack=False)
    assert again.message_id == first.message_id == "m00000"
    assert again.redelivered
    assert again.delivery_count == 2
    again.nack(requeue=False)
    assert queue.dead_count("jobs") == 1
    assert queue.depth("jobs") == 1
    (last,) = take(queue, ["jobs"], 1)
    assert last.message_id == "m00001"
    assert not last.redelivered
    with pytest.raises(QueueError, match="already settled"):
        last.ack()


def test_claimed_but_not_handed_out_is_released_undelivered(queue: EmbeddedQueue) -> None:
    queue.publish("jobs", msgs(20))
    take(queue, ["jobs"], 1, prefetch=16)  # claims 16, hands out and acks 1
    rest = take(queue, ["jobs"], 19)
    assert [d.message_id for d in rest] == [f"m{i:05d}" for i in range(1, 20)]
    assert not any(d.redelivered for d in rest)


def test_close_releases_unsettled_deliveries_at_once(db_path: Path) -> None:
    first = EmbeddedQueue(db_path, lease_seconds=3600)
    first.declare_queue("jobs")
    first.publish("jobs", msgs(5))
    held = take(first, ["jobs"], 3, ack=False)
    first.close()
    second = EmbeddedQueue(db_path, lease_seconds=3600)
    got = take(second, ["jobs"], 5)
    assert [d.message_id for d in got] == [f"m{i:05d}" for i in range(5)]
    assert [d.redelivered for d in got] == [True, True, True, False, False]
    with pytest.raises(QueueError, match="already settled"):
        held[0].ack()
    second.close()


def test_expired_lease_is_delivered_again_and_the_slow_consumer_cannot_ack(
    db_path: Path,
) -> None:
    slow = EmbeddedQueue(db_path, lease_seconds=0.3, poll_interval=0.01)
    slow.declare_queue("jobs")
    slow.publish("jobs", msgs(1))
    (lost,) = take(slow, ["jobs"], 1, ack=False)

    fast = EmbeddedQueue(db_path, lease_seconds=3600, poll_interval=0.01)
    (taken,) = take(fast, ["jobs"], 1, ack=False)  # waits for the slow lease to expire
    assert taken.message_id == lost.message_id
    assert taken.redelivered

    with pytest.raises(QueueError, match=r"lease on message 'm00000'.*was lost"):
        lost.ack()
    assert fast.depth("jobs") == 1  # still there, held by the fast consumer
    with pytest.raises(QueueError, match="already settled"):
        lost.nack(requeue=False)
    assert fast.dead_count("jobs") == 0
    taken.ack()
    assert fast.depth("jobs") == 0
    slow.close()
    fast.close()


def test_nack_requeue_of_a_lost_lease_only_logs(
    db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    slow = EmbeddedQueue(db_path, lease_seconds=0.2, poll_interval=0.01)
    slow.declare_queue("jobs")
    slow.publish("jobs", msgs(1))
    (lost,) = take(slow, ["jobs"], 1, ack=False)
    other = EmbeddedQueue(db_path, poll_interval=0.01)
    (taken,) = take(other, ["jobs"], 1, ack=False)
    lost.nack()
    assert "was lost" in caplog.text
    taken.ack()
    assert other.depth("jobs") == 0
    other.close()
    slow.close()


# -- several processes, and processes that die ---------------------------------------------

_CONSUMER = textwrap.dedent(
    """
    import os, sys, threading
    from factflow_replay_dagster.queues.embedded import EmbeddedQueue

    path, out, lease = sys.argv[1], sys.argv[2], float(sys.argv[3])
    hold_after = int(sys.argv[4])  # stop acking (and hang) after this many acks; 0 = never
    queue = EmbeddedQueue(path, lease_seconds=lease, poll_interval=0.01)
    stop = threading.Event()

    def watch():
        while not stop.wait(0.05):
            if queue.depth("jobs") == 0:
                stop.set()

    threading.Thread(target=watch, daemon=True).start()
    acked = 0
    with open(out, "a") as record:
        for delivery in queue.consume(["jobs"], stop=stop, prefetch=int(sys.argv[5])):
            if hold_after and acked >= hold_after:
                record.write("HOLDING\\n")
                record.flush()
                os.fsync(record.fileno())
                threading.Event().wait()  # hold the leases until killed
            # Recorded before the ack, so a kill in between shows as a duplicate, never a loss.
            record.write(f"{delivery.message_id} {int(delivery.redelivered)}\\n")
            record.flush()
            os.fsync(record.fileno())
            delivery.ack()
            acked += 1
    """
)

_PUBLISHER = textwrap.dedent(
    """
    import os, sys
    from factflow_replay_dagster.queues.base import OutgoingMessage
    from factflow_replay_dagster.queues.embedded import EmbeddedQueue

    path, side, count, batch = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    queue = EmbeddedQueue(path, batch_size=batch)
    queue.declare_queue("jobs")
    with open(side, "a") as record:
        def on_confirmed(messages):
            record.write("".join(m.message_id + "\\n" for m in messages))
            record.flush()
            os.fsync(record.fileno())

        messages = (
            OutgoingMessage(f"m{i:07d}", f"body {i}".encode(), headers={"n": i})
            for i in range(count)
        )
        queue.publish("jobs", messages, on_confirmed=on_confirmed)
    """
)


def run_script(script: str, *args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", script, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=PROC_TIMEOUT,
        check=True,
    )


def start_script(script: str, *args: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", script, *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def kill(proc: subprocess.Popen[str]) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=PROC_TIMEOUT)
    assert proc.returncode == -signal.SIGKILL


def test_two_consumer_processes_drain_one_queue_exactly_once(
    queue: EmbeddedQueue, tmp_path: Path
) -> None:
    queue.publish("jobs", msgs(2000))
    outs = [tmp_path / f"consumer{n}.txt" for n in range(2)]
    procs = [start_script(_CONSUMER, queue.path, out, 60, 0, 16) for out in outs]
    for proc in procs:
        _, err = proc.communicate(timeout=PROC_TIMEOUT)
        assert proc.returncode == 0, err
    acked = [line.split()[0] for out in outs for line in lines(out)]
    assert len(acked) == 2000
    assert set(acked) == {m.message_id for m in msgs(2000)}
    assert queue.depth("jobs") == 0


@pytest.mark.parametrize("batch_size", [1, 50, 1000])
def test_publisher_killed_mid_publish_loses_nothing_it_confirmed(
    tmp_path: Path, batch_size: int
) -> None:
    path, side = tmp_path / "queue.db", tmp_path / "confirmed.txt"
    proc = start_script(_PUBLISHER, path, side, 10_000_000, batch_size)
    assert wait_until(lambda: len(lines(side)) >= 2000, timeout=PROC_TIMEOUT, interval=0.01)
    kill(proc)

    confirmed = lines(side)
    queue = EmbeddedQueue(path)
    got = [d.message_id for d in take(queue, ["jobs"], queue.depth("jobs"), prefetch=500)]
    # Everything confirmed is there, and what is there is a gap-free prefix in order.
    assert set(confirmed) <= set(got)
    assert got == [f"m{i:07d}" for i in range(len(got))]
    queue.close()


def test_consumer_killed_while_holding_leases_loses_nothing(tmp_path: Path) -> None:
    path, side = tmp_path / "queue.db", tmp_path / "confirmed.txt"
    run_script(_PUBLISHER, path, side, 1000, 200)  # the publisher exits normally
    assert len(lines(side)) == 1000

    held_out = tmp_path / "held.txt"
    proc = start_script(_CONSUMER, path, held_out, 1.0, 300, 50)
    assert wait_until(lambda: "HOLDING" in lines(held_out), timeout=PROC_TIMEOUT)
    kill(proc)
    first = [line.split()[0] for line in lines(held_out) if line != "HOLDING"]
    assert len(first) == 300

    # A new consumer process takes over once the dead consumer's leases expire.
    later_out = tmp_path / "later.txt"
    run_script(_CONSUMER, path, later_out, 60, 0, 16)
    later = [line.split() for line in lines(later_out)]
    assert set(first) | {mid for mid, _ in later} == set(lines(side))
    assert not set(first) & {mid for mid, _ in later}
    assert len(later) == 700
    # The kill happened with up to 50 claimed leases: those come back as redelivered.
    assert any(flag == "1" for _, flag in later)
    assert EmbeddedQueue(path).depth("jobs") == 0


def test_survives_reopening_in_new_processes(tmp_path: Path) -> None:
    path, side = tmp_path / "queue.db", tmp_path / "confirmed.txt"
    run_script(_PUBLISHER, path, side, 100, 30)
    out = tmp_path / "consumed.txt"
    # Consume 40 in another process that then exits cleanly.
    reader = textwrap.dedent(
        """
        import sys, threading
        from factflow_replay_dagster.queues.embedded import EmbeddedQueue
        queue = EmbeddedQueue(sys.argv[1])
        assert queue.queues() == ["jobs"] and queue.depth("jobs") == 100
        stop, n = threading.Event(), 0
        with EmbeddedQueue(sys.argv[1]) as queue, open(sys.argv[2], "w") as out:
            for d in queue.consume(["jobs"], stop=stop):
                out.write(d.message_id + "\\n")
                d.ack()
                n += 1
                if n == 40:
                    stop.set()
        """
    )
    run_script(reader, path, out)
    queue = EmbeddedQueue(path)
    rest = take(queue, ["jobs"], 60)
    assert [*lines(out), *(d.message_id for d in rest)] == [f"m{i:07d}" for i in range(100)]
    assert rest[0].headers == {"n": 40}
    assert rest[0].body == b"body 40"
    assert not any(d.redelivered for d in rest)
    queue.close()
