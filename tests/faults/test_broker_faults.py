"""Broker faults during a 20,000-artefact replay, on a RabbitMQ node of this module's own:
SIGKILLed and restarted, blocking publishers (a memory alarm), the target queue deleted, and a
queue that refuses messages. Each test prints its figures: what was lost (always 0), the
duplicates and the confirm window they stay within.

``tests/e2e/test_servers_replay.py`` restarts the broker gracefully under a small replay
through the whole stack; these are the harsher faults, at a size where they strike mid-replay.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pika
import pika.exceptions
import pytest
from support.broker_faults import QUEUE, FaultAt, consume_until_cancelled, receive, replay_of
from support.environments import queue_depth
from support.faults import Received, StoredParent, record_figures, stored_parent
from support.servers.rabbitmq import RabbitMQServer
from support.terminal import TerminalProcess

from factflow_replay_dagster.cli._runs import cli_instance
from factflow_replay_dagster.connect import open_artefact_store, open_execution_store
from factflow_replay_dagster.errors import (
    BrokerConnectionError,
    MessageNackedError,
    UnroutableMessageError,
)
from factflow_replay_dagster.executions import ExecutionStore, ReplayState
from factflow_replay_dagster.queues.base import RetryPolicy
from factflow_replay_dagster.queues.rabbitmq import RabbitMQPublisher
from factflow_replay_dagster.replay import (
    DetachedReplayService,
    ReplayProgress,
    ReplayResult,
)
from factflow_replay_dagster.settings import Settings
from factflow_replay_dagster.storage.base import ArtefactStore

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow]

PARENT = "parent-broker-faults"
COUNT = 20_000
WINDOW = 500
PROGRESS_EVERY = 500
#: Retries that ride out a restart of the node (5-10 s here): about 40 s in all.
RIDE_OUT = RetryPolicy(max_retries=40, interval_start=0.2, interval_step=0.2, interval_max=1.0)
#: Liveness bounds (a hang fails instead of blocking the suite), never timing claims.
LIVENESS = 120.0
#: Seen here: a durable queue declared about 1 s before a SIGKILL was gone after the restart.
SETTLE_SECONDS = 3.0
#: RabbitMQ's memory watermark that raises the memory alarm at once.
ALARM = "0.0000001"


@dataclass
class Lab:
    broker: RabbitMQServer
    settings: Settings
    parent: StoredParent
    artefacts: ArtefactStore
    executions: ExecutionStore

    def service(self, publisher: RabbitMQPublisher) -> DetachedReplayService:
        return DetachedReplayService(
            artefacts=self.artefacts,
            executions=self.executions,
            publisher=publisher,
            progress_every=PROGRESS_EVERY,
        )

    def publisher(self, *, retry: RetryPolicy = RIDE_OUT) -> RabbitMQPublisher:
        return RabbitMQPublisher(self.broker.url, window=WINDOW, retry=retry)

    def fresh_queue(self, arguments: dict[str, object] | None = None) -> None:
        """``news.enrich`` empty: deleted, then declared durable (with ``arguments``)."""
        connection = pika.BlockingConnection(pika.URLParameters(self.broker.url))
        try:
            channel = connection.channel()
            channel.queue_delete(QUEUE)
            channel.queue_declare(QUEUE, durable=True, arguments=arguments)
        finally:
            connection.close()


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """A private broker (these tests kill it and raise its alarms), and a registered parent
    whose ``parse`` stage stored 20,000 artefacts in a folder, with a SQLite execution store."""
    broker = RabbitMQServer(tmp_path_factory.mktemp("rabbitmq-faults"))
    broker.start()
    home = tmp_path_factory.mktemp("home")
    settings = Settings.from_env(
        {
            "FACTFLOW_HOME": str(home),
            "FACTFLOW_BROKER_URL": broker.url,
            "FACTFLOW_CONFIRM_WINDOW": str(WINDOW),
            "FACTFLOW_PROGRESS_EVERY": str(PROGRESS_EVERY),
        }
    )
    try:
        parent = stored_parent(settings, PARENT, COUNT)
        with (
            open_artefact_store(settings) as artefacts,
            open_execution_store(settings) as executions,
        ):
            yield Lab(broker, settings, parent, artefacts, executions)
    finally:
        broker.stop()


def in_background(action: Callable[[], None]) -> threading.Thread:
    thread = threading.Thread(target=action, daemon=True)
    thread.start()
    return thread


@contextlib.contextmanager
def memory_alarm_cleared_after(broker: RabbitMQServer) -> Iterator[Callable[[], None]]:
    """Yields ``raise_alarm``; whatever happens, the watermark is restored at the end."""
    original = broker.ctl("eval", "vm_memory_monitor:get_vm_memory_high_watermark().").strip()
    try:
        yield lambda: broker.ctl("set_vm_memory_high_watermark", ALARM)
    finally:
        broker.ctl("set_vm_memory_high_watermark", original)


def alarms(broker: RabbitMQServer) -> str:
    return broker.ctl("eval", "rabbit_alarm:get_alarms().").strip()


def lost(received: Received, parent: StoredParent) -> int:
    """Artefacts of ``parent`` no message carried (by message id)."""
    return len(parent.message_ids - received.unique)


def assert_every_artefact_once_or_duplicated_within(
    received: Received, parent: StoredParent, *, bound: int
) -> None:
    assert lost(received, parent) == 0  # every artefact arrived
    assert received.unique <= parent.message_ids  # and nothing else
    assert received.duplicates <= bound  # a copy carries its artefact's own id


# -- the broker SIGKILLed and restarted --------------------------------------------------------


def test_broker_sigkilled_twice_mid_replay_loses_nothing(
    lab: Lab, request: pytest.FixtureRequest
) -> None:
    lab.fresh_queue()
    time.sleep(SETTLE_SECONDS)  # let the node settle the new durable queue before a crash
    restarts: list[threading.Thread] = []

    def kill_and_restart(_update: ReplayProgress) -> None:
        for previous in restarts:  # the last restart finished: the node is up
            previous.join(LIVENESS)
        lab.broker.kill()
        restarts.append(in_background(lab.broker.start))

    faults = FaultAt([5_000, 12_000], kill_and_restart)
    replay = replay_of(PARENT, "sigkill")
    replay_id = str(replay.replay_id)
    started = time.monotonic()
    failures: list[BrokerConnectionError] = []  # retries ran out before the node was back
    result: ReplayResult | None = None
    with lab.publisher() as publisher:
        service = lab.service(publisher)
        while result is None:
            try:
                if failures:
                    result = service.resume(replay_id, on_progress=faults)
                else:
                    result = service.run(replay, on_progress=faults)
            except BrokerConnectionError as exc:
                failures.append(exc)
            if result is None:  # failed, its position saved: resume once the node is back
                assert len(failures) <= len(faults.fired)  # one failure per kill at most
                saved = lab.executions.get_replay(replay_id)
                assert saved.state is ReplayState.FAILED
                assert saved.confirmed < COUNT
                for restart in restarts:
                    restart.join(LIVENESS)
        for restart in restarts:
            restart.join(LIVENESS)
    seconds = time.monotonic() - started
    assert lab.broker.running()
    assert len(faults.fired) == 2  # both kills struck mid-replay
    record = lab.executions.get_replay(str(replay.replay_id))
    assert (result.state, record.state, record.confirmed) == (
        "SUCCEEDED",
        ReplayState.SUCCEEDED,
        COUNT,
    )

    received = receive(lab.broker.url, QUEUE)

    bound = len(faults.fired) * WINDOW  # only unconfirmed messages can come twice
    record_figures(
        request,
        f"RabbitMQ SIGKILLed and restarted during a {COUNT:,}-artefact replay",
        **{
            "faults survived": len(faults.fired),
            "killed at confirmed": ", ".join(f"{n:,}" for n in faults.fired),
            "outcome": "completed by itself"
            if not failures
            else f"failed {len(failures)} time(s) with its position saved, then resumed",
            "confirmed (replay record)": record.confirmed,
            "received by an independent consumer": len(received.artefact_ids),
            "distinct artefacts received": len(received.unique),
            "messages lost": lost(received, lab.parent),
            "duplicates (same message id)": received.duplicates,
            "re-sent after a reconnect (last run)": result.resent,
            "confirm window": WINDOW,
            "duplicates allowed (window x faults)": bound,
            "seconds (replay with both restarts)": round(seconds, 1),
        },
    )
    assert_every_artefact_once_or_duplicated_within(received, lab.parent, bound=bound)
    assert received.end_markers >= 1  # the end marker came after them


# -- the broker blocks publishers: a memory alarm ----------------------------------------------

#: The bar's note while blocked, and the op's warning (the Dagster run's log).
BAR_BLOCKED = r"\[[#-]+\] [\d,]+/20,000 +\d+%  broker blocked: low on memory, waiting"
LOG_BLOCKED = r"broker blocked \(low on memory\)"
#: While blocked the client sleeps in its poller: at most this share of one core (a spinning
#: loop takes all of it). A bound on waste, not on speed.
BLOCKED_CPU_SHARE = 0.2
BLOCKED_SECONDS = 3.0


def test_a_memory_alarm_pauses_the_cli_replay_which_says_so_and_continues(
    lab: Lab, request: pytest.FixtureRequest
) -> None:
    """The command line on a terminal: the alarm strikes mid-replay; the bar and the run's log
    say "broker blocked"; the process waits without spinning, nothing more reaches the queue;
    once the alarm clears it completes, every artefact once."""
    lab.fresh_queue()
    env = {
        "FACTFLOW_HOME": str(lab.settings.home),
        "FACTFLOW_BROKER_URL": lab.broker.url,
        "FACTFLOW_CONFIRM_WINDOW": str(WINDOW),
        "FACTFLOW_PROGRESS_EVERY": str(PROGRESS_EVERY),
    }
    args = ["execution", "replay", PARENT, "--from-stage", "parse", "--to-route", "enrich"]
    # 2,000 a second: the replay is still running when the alarm goes off after 4,000.
    args += ["--rate", "2000", "--reason", "memory alarm"]
    cli: TerminalProcess | None = None
    try:
        with memory_alarm_cleared_after(lab.broker) as raise_alarm:
            cli = TerminalProcess(args, {**env, "DAGSTER_HOME": ""})
            cli.wait_for(r"\b(?:[4-9],\d{3}|1\d,\d{3})/20,000", timeout=LIVENESS)
            raise_alarm()
            bar = cli.wait_for(BAR_BLOCKED, timeout=LIVENESS).group(0)
            cli.wait_for(LOG_BLOCKED, timeout=LIVENESS)
            (replay,) = [r for r in lab.executions.list_replays() if r.state is ReplayState.RUNNING]
            depth, cpu = queue_depth(lab.broker.url, QUEUE), cli.cpu_seconds()
            wall = time.monotonic()
            time.sleep(BLOCKED_SECONDS)
            cpu_share = (cli.cpu_seconds() - cpu) / (time.monotonic() - wall)
            depth_after = queue_depth(lab.broker.url, QUEUE)
            saved = lab.executions.get_replay(replay.replay_id)
            still_alarmed = alarms(lab.broker)
        code = cli.wait(LIVENESS)  # the alarm is cleared: the replay goes on
    finally:
        if cli is not None:
            cli.kill()
    shown = cli.shown
    assert code == 0, shown[-3000:]
    assert "memory" in still_alarmed  # it was blocked for the whole measurement
    assert saved.state is ReplayState.RUNNING
    assert 4_000 <= saved.confirmed < COUNT
    record = lab.executions.get_replay(replay.replay_id)
    assert (record.state, record.confirmed) == (ReplayState.SUCCEEDED, COUNT)
    assert f"SUCCEEDED, {COUNT}/{COUNT} confirmed" in shown
    # The Dagster run's own log has the warning and the all-clear.
    with cli_instance(Settings.from_env(env)) as instance:
        run_id = str(record.dagster_run_id)
        messages = [entry.user_message for entry in instance.all_logs(run_id)]
    blocked = [m for m in messages if "broker blocked (low on memory)" in m]
    assert blocked
    assert any("broker unblocked" in m for m in messages[messages.index(blocked[0]) :])

    received = receive(lab.broker.url, QUEUE)
    record_figures(
        request,
        f"RabbitMQ memory alarm during a {COUNT:,}-artefact CLI replay",
        **{
            "the bar while blocked": bar,
            "confirmed when blocked (saved)": saved.confirmed,
            "queue depth when blocked": depth,
            f"queue depth {BLOCKED_SECONDS:g} s later": depth_after,
            "client CPU while blocked (share of a core)": round(cpu_share, 3),
            "client CPU allowed": BLOCKED_CPU_SHARE,
            "confirmed (replay record)": record.confirmed,
            "received by an independent consumer": len(received.artefact_ids),
            "messages lost": lost(received, lab.parent),
            "duplicates": received.duplicates,
            "confirm window": WINDOW,
        },
    )
    assert depth_after == depth  # nothing more reached the queue, nothing was dropped
    assert cpu_share < BLOCKED_CPU_SHARE  # waiting, not spinning
    assert_every_artefact_once_or_duplicated_within(received, lab.parent, bound=0)


def test_a_replay_stopped_while_blocked_ends_at_once_and_resumes_with_no_gap(
    lab: Lab, request: pytest.FixtureRequest
) -> None:
    """A stop (a Dagster termination, Ctrl-C) while the broker blocks cannot wait for
    confirms the broker will not send until the alarm clears: the replay is CANCELLED
    there, with what was confirmed saved; a resume after the alarm completes it."""
    lab.fresh_queue()
    stop = threading.Event()
    states: list[str | None] = []

    def watch(update: ReplayProgress) -> None:
        states.append(update.broker_blocked)
        if update.broker_blocked is not None:
            stop.set()

    replay = replay_of(PARENT, "stopped while blocked")
    with memory_alarm_cleared_after(lab.broker) as raise_alarm, lab.publisher() as publisher:
        faults = FaultAt([3_000], lambda _update: raise_alarm())

        def on_progress(update: ReplayProgress) -> None:
            faults(update)
            watch(update)

        first = lab.service(publisher).run(replay, should_stop=stop.is_set, on_progress=on_progress)
        still_alarmed = alarms(lab.broker)
    assert "memory" in still_alarmed  # it ended while the broker still blocked
    assert first.state == "CANCELLED"
    assert "low on memory" in states
    saved = lab.executions.get_replay(first.replay_id or "")
    assert saved.state is ReplayState.CANCELLED
    assert 3_000 <= saved.confirmed == first.confirmed < COUNT

    with lab.publisher() as publisher:
        second = lab.service(publisher).resume(first.replay_id or "")
    assert second.state == "SUCCEEDED"
    received = receive(lab.broker.url, QUEUE)
    record_figures(
        request,
        "Replay stopped while RabbitMQ blocked publishers, resumed after the alarm",
        **{
            "confirmed when stopped (saved)": saved.confirmed,
            "confirmed after the resume": lab.executions.get_replay(saved.replay_id).confirmed,
            "received by an independent consumer": len(received.artefact_ids),
            "messages lost": lost(received, lab.parent),
            "duplicates (sent, unconfirmed, sent again)": received.duplicates,
            "confirm window": WINDOW,
        },
    )
    assert_every_artefact_once_or_duplicated_within(received, lab.parent, bound=WINDOW)


# -- the queue deleted, or refusing messages ---------------------------------------------------


def test_the_target_queue_deleted_mid_replay_fails_naming_it_and_resumes_with_no_gap(
    lab: Lab, request: pytest.FixtureRequest
) -> None:
    """A consumer takes every message as it comes; the queue is deleted once it has taken the
    first 5,000 or so. The replay fails naming the queue, having counted exactly what the
    consumer got; declared again, a resume completes it with nothing missing."""
    lab.fresh_queue()
    ready = threading.Event()
    consumed: list[Received] = []
    consumer = in_background(
        lambda: consumed.append(consume_until_cancelled(lab.broker.url, QUEUE, ready))
    )
    assert ready.wait(LIVENESS)

    def delete_once_drained(_update: ReplayProgress) -> None:
        # The publisher waits in this callback: once what it sent has been taken, the
        # queue is empty and can go (if_empty), with nothing confirmed left in it.
        connection = pika.BlockingConnection(pika.URLParameters(lab.broker.url))
        try:
            deadline = time.monotonic() + LIVENESS
            while time.monotonic() < deadline:
                channel = connection.channel()
                try:
                    channel.queue_delete(QUEUE, if_empty=True)
                    return
                except pika.exceptions.ChannelClosedByBroker as exc:
                    if exc.reply_code != 406:  # 406: not empty yet
                        raise
                    time.sleep(0.05)
            raise AssertionError("the consumer never emptied the queue")
        finally:
            connection.close()

    replay = replay_of(PARENT, "queue deleted")
    with lab.publisher() as publisher:
        service = lab.service(publisher)
        with pytest.raises(UnroutableMessageError) as caught:
            service.run(replay, on_progress=FaultAt([5_000], delete_once_drained))
        consumer.join(LIVENESS)
        failed = lab.executions.get_replay(str(replay.replay_id))
        (first,) = consumed

        lab.fresh_queue()  # the fix: declare it again
        second = service.resume(str(replay.replay_id))
    assert second.state == "SUCCEEDED"
    rest = receive(lab.broker.url, QUEUE)
    record_figures(
        request,
        f"Target queue deleted during a {COUNT:,}-artefact replay, declared again, resumed",
        **{
            "error": type(caught.value).__name__,
            "confirmed when it failed (saved)": failed.confirmed,
            "received before the deletion": len(first.artefact_ids),
            "received after the resume": len(rest.artefact_ids),
            "messages lost": lost(received := first + rest, lab.parent),
            "duplicates": received.duplicates,
        },
    )
    assert caught.value.queue == QUEUE
    assert QUEUE in str(caught.value)
    assert failed.state is ReplayState.FAILED
    assert QUEUE in (failed.error or "")
    # Nothing counted that was not confirmed, nothing confirmed that was not received.
    assert failed.confirmed == len(first.artefact_ids) == caught.value.confirmed >= 5_000
    assert failed.last_confirmed_key == lab.parent.keys[len(first.artefact_ids) - 1]
    assert_every_artefact_once_or_duplicated_within(received, lab.parent, bound=0)


def test_a_queue_refusing_messages_fails_naming_it_and_resumes_with_no_gap(
    lab: Lab, request: pytest.FixtureRequest
) -> None:
    """``x-max-length`` 5,000 with ``x-overflow: reject-publish``: the broker nacks the
    5,001st; the replay fails naming the queue with exactly the 5,000 stored counted. Emptied
    and declared without the limit, a resume completes it with nothing missing."""
    limit = 5_000
    lab.fresh_queue({"x-max-length": limit, "x-overflow": "reject-publish"})
    replay = replay_of(PARENT, "queue full")
    with lab.publisher() as publisher:
        service = lab.service(publisher)
        with pytest.raises(MessageNackedError) as caught:
            service.run(replay)
        failed = lab.executions.get_replay(str(replay.replay_id))
        first = receive(lab.broker.url, QUEUE)
        lab.fresh_queue()  # the fix: no limit (its 5,000 messages were consumed first)
        second = service.resume(str(replay.replay_id))
    assert second.state == "SUCCEEDED"
    rest = receive(lab.broker.url, QUEUE)
    received = first + rest
    record_figures(
        request,
        f"Queue refusing messages (x-max-length {limit:,}, reject-publish), fixed, resumed",
        **{
            "error": type(caught.value).__name__,
            "confirmed when it failed (saved)": failed.confirmed,
            "in the queue when it failed": len(first.artefact_ids),
            "received after the resume": len(rest.artefact_ids),
            "messages lost": lost(received, lab.parent),
            "duplicates": received.duplicates,
        },
    )
    assert caught.value.queue == QUEUE
    assert "reject-publish" in str(caught.value)
    assert failed.state is ReplayState.FAILED
    assert failed.confirmed == len(first.artefact_ids) == caught.value.confirmed == limit
    assert failed.last_confirmed_key == lab.parent.keys[limit - 1]
    assert_every_artefact_once_or_duplicated_within(received, lab.parent, bound=0)
