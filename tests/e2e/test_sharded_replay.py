"""A replay cut into 4 shards runs as 4 steps of a launched run (the multiprocess executor):
every artefact arrives once by id, each shard in key order; a run cancelled mid-way and then
resumed completes it with no gap; and a quorum queue takes a replay like a classic one."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import dagster as dg
import pika
import pytest
from support.api import dagster_home_launching_at_once
from support.environments import drain, reset_queues
from support.servers.rabbitmq import RabbitMQServer

from factflow_replay_dagster.api.launch import InstanceLauncher
from factflow_replay_dagster.connect import (
    open_artefact_store,
    open_execution_store,
    open_publisher,
)
from factflow_replay_dagster.executions import ExecutionStatus, ReplayState
from factflow_replay_dagster.layout import artefact_key, stage_prefix
from factflow_replay_dagster.messages import Headers
from factflow_replay_dagster.pipelines import sample_config
from factflow_replay_dagster.replay import DetachedReplayService, ReplayRequest
from factflow_replay_dagster.settings import Settings
from factflow_replay_dagster.snapshot import ConfigSnapshot

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow]

OBJECTS = 20_000
WINDOW = 200
PARENT = "parent-sharded"


@pytest.fixture
def deployment(
    rabbitmq_server: RabbitMQServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    """20,000 stored parse artefacts of a registered parent, RabbitMQ, a Dagster home whose
    runs launch at once in processes of their own; the environment the code location reads."""
    reset_queues(rabbitmq_server.url)
    env = {
        "FACTFLOW_HOME": str(tmp_path / "home"),
        "FACTFLOW_BROKER_URL": rabbitmq_server.url,
        "FACTFLOW_CONFIRM_WINDOW": str(WINDOW),
        "FACTFLOW_PROGRESS_EVERY": "100",
        "DAGSTER_HOME": str(dagster_home_launching_at_once(tmp_path / "dagster")),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = Settings.from_env(env)
    body = b"x" * 1024
    keys = [artefact_key(PARENT, "ingest", "parse", f"doc-{i:06d}.json") for i in range(OBJECTS)]
    with open_artefact_store(settings) as store, open_execution_store(settings) as executions:
        for key in keys:
            store.write(key, body)
        snapshot = ConfigSnapshot.load(sample_config("news"))
        executions.create_execution(
            PARENT, snapshot, origin="registered", status=ExecutionStatus.REGISTERED
        )
        executions.record_stored_stage(
            PARENT, "ingest", "parse", count=OBJECTS, size=OBJECTS * 1024, keys=keys
        )
    with open_publisher(settings) as publisher:
        for queue in snapshot.config.queues():
            publisher.declare_queue(queue)
    return settings


def wait(launcher: InstanceLauncher, run_id: str, *, timeout: float = 300) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = launcher.run(run_id)
        if run is not None and run.finished:
            return run.status
        time.sleep(0.5)
    raise AssertionError(f"run {run_id} did not finish in {timeout} s")


def test_four_shards_on_the_multiprocess_executor_cancel_and_resume(
    deployment: Settings, rabbitmq_server: RabbitMQServer
) -> None:
    config = {
        "source_execution_id": PARENT,
        "from_stage": "parse",
        "to_route": "enrich",
        "shards": 4,
        "rate": 2000.0,  # 500 a second per shard: long enough to cancel mid-way
    }
    launcher = InstanceLauncher(deployment)
    executions = open_execution_store(deployment)
    try:
        first = launcher.submit("replay_job", config, {"factflow/requested_by": "test"})
        replay_id = f"replay-{first}"
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            shards = executions.replay_shards(replay_id) if _exists(executions, replay_id) else []
            running = [s for s in shards if s.confirmed > 0]
            if len(running) == 4 and sum(s.confirmed for s in shards) >= 4_000:
                break
            time.sleep(0.2)
        else:
            raise AssertionError("the 4 shards never all got going")
        launcher.cancel(first)
        assert wait(launcher, first) == "CANCELED"
        cancelled = executions.get_replay(replay_id)
        assert cancelled.state is ReplayState.CANCELLED
        assert 0 < cancelled.confirmed < OBJECTS
        shards = executions.replay_shards(replay_id)
        assert [s.total for s in shards] == [5_000] * 4
        assert sum(s.confirmed for s in shards) == cancelled.confirmed  # nothing uncounted

        second = launcher.submit(
            "replay_job",
            {**config, "resume_replay_id": replay_id},
            {"factflow/requested_by": "test"},
        )
        assert wait(launcher, second) == "SUCCESS"
        done = executions.get_replay(replay_id)
        assert (done.state, done.confirmed, done.total) == (ReplayState.SUCCEEDED, OBJECTS, OBJECTS)
        instance = launcher.instance()
        steps = {
            e.step_key for e in instance.all_logs(second, of_type=dg.DagsterEventType.STEP_START)
        }
        # Each shard is a step of its own (the resume publishes only what was left of each).
        assert {f"publish_shard[shard_{i}]" for i in range(4)} <= steps
        pids = {
            e.dagster_event.pid
            for e in instance.all_logs(second, of_type=dg.DagsterEventType.STEP_START)
            if e.dagster_event and e.step_key and e.step_key.startswith("publish_shard")
        }
        assert len(pids) == 4  # in processes of their own: the multiprocess executor
    finally:
        launcher.close()

    received = drain(rabbitmq_server.url, "news.enrich")
    artefacts = [(p, b) for p, b in received if p.type == "factflow.artefact"]
    ends = [p for p, _ in received if p.type == "factflow.end"]
    keys = [str(p.headers[Headers.OBJECT_KEY]) for p, _ in artefacts]
    counted = Counter(p.message_id for p, _ in artefacts)
    assert len(counted) == OBJECTS  # every artefact, by id
    duplicates = len(artefacts) - len(counted)
    # A cancel waits for outstanding confirms and saves each shard's position, so a resume
    # sends nothing twice: at most what one confirm window per shard held, in any case.
    assert duplicates <= 4 * WINDOW
    assert len(ends) == 1  # one end marker, after every shard
    # Order holds within each shard: its keys arrive in increasing order.
    for shard in shards:
        mine = [
            k
            for k in keys
            if (shard.start_after is None or k > shard.start_after) and k <= shard.stop_at
        ]
        firsts = list(dict.fromkeys(mine))
        assert firsts == sorted(firsts), f"shard {shard.shard} out of order"
        assert len(firsts) == 5_000
    print(
        f"4 shards: cancelled at {cancelled.confirmed}/{OBJECTS}, resumed to {OBJECTS}; "
        f"{duplicates} duplicates (same ids); lost 0"
    )
    executions.close()


def _exists(executions: object, replay_id: str) -> bool:
    from factflow_replay_dagster.errors import UnknownReplayError

    try:
        executions.get_replay(replay_id)  # type: ignore[attr-defined]
    except UnknownReplayError:
        return False
    return True


def test_a_replay_into_a_quorum_queue(
    deployment: Settings, rabbitmq_server: RabbitMQServer
) -> None:
    """Replays publish to classic and quorum queues alike (publisher confirms, persistent,
    mandatory): the target declared as x-queue-type quorum gets every artefact once."""
    connection = pika.BlockingConnection(pika.URLParameters(rabbitmq_server.url))
    try:
        channel = connection.channel()
        channel.queue_delete("news.enrich")
        channel.queue_declare("news.enrich", durable=True, arguments={"x-queue-type": "quorum"})
    finally:
        connection.close()
    with (
        open_artefact_store(deployment) as store,
        open_execution_store(deployment) as executions,
        open_publisher(deployment) as publisher,
    ):
        service = DetachedReplayService(artefacts=store, executions=executions, publisher=publisher)
        result = service.run(
            ReplayRequest.parse(
                {
                    "source_execution_id": PARENT,
                    "from_stage": "parse",
                    "to_route": "enrich",
                    "limit": 2_000,
                    "shards": 2,
                }
            )
        )
    assert (result.state, result.confirmed) == ("SUCCEEDED", 2_000)
    received = drain(rabbitmq_server.url, "news.enrich")
    artefacts = [p for p, _ in received if p.type == "factflow.artefact"]
    assert len({p.message_id for p in artefacts}) == len(artefacts) == 2_000
    prefix = stage_prefix(PARENT, "ingest", "parse")
    assert min(str(p.headers[Headers.OBJECT_KEY]) for p in artefacts).startswith(prefix)
