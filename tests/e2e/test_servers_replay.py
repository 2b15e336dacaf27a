"""Replay on RabbitMQ + SeaweedFS + PostgreSQL: the job end to end, snapshot collision,
cancel and resume, and a broker restarted mid-replay."""

from __future__ import annotations

import collections
import contextlib
import threading
import time
from collections.abc import Iterator

import dagster as dg
import pika
import pytest
from support.environments import drain, queue_depth, reset_queues, server_env
from support.servers.fixtures import serving
from support.servers.rabbitmq import RabbitMQServer
from support.worlds import World, news_world

from factflow_replay_dagster.defs.definitions import build_definitions
from factflow_replay_dagster.executions import ExecutionStatus
from factflow_replay_dagster.messages import Headers
from factflow_replay_dagster.pipelines import sample_config
from factflow_replay_dagster.queues.base import RetryPolicy
from factflow_replay_dagster.queues.rabbitmq import RabbitMQPublisher
from factflow_replay_dagster.replay import DetachedReplayService, ReplayRequest
from factflow_replay_dagster.runtime import declare_queues, run_until_finished
from factflow_replay_dagster.settings import Settings
from factflow_replay_dagster.snapshot import ConfigSnapshot


@pytest.fixture(scope="module")
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    with pytest.MonkeyPatch.context() as monkeypatch:
        env = server_env(request, tmp_path_factory.mktemp("servers"), monkeypatch)
        yield from news_world(env)


@pytest.fixture
def broker(world: World) -> str:
    url = world.env["FACTFLOW_BROKER_URL"]
    for name in ("news.enrich", "news.v2.enrich"):
        with contextlib.suppress(pika.exceptions.ChannelClosedByBroker):  # not declared yet
            drain(url, name)
    return url


def test_replay_job_end_to_end_with_provenance_and_run_tags(world: World, broker: str) -> None:
    job = build_definitions(Settings.from_env(world.env)).resolve_job_def("replay_job")
    with dg.instance_for_test() as instance:
        result = job.execute_in_process(
            run_config=world.good_request(reason="e2e"), instance=instance
        )
        tags = instance.get_run_by_id(result.run_id).tags
    outcome = result.output_for_node("finish_replay")
    child = run_until_finished(
        outcome.child_execution_id,
        world.news.config.queues(),
        **world.components.runtime(),
        timeout=300,
    )
    assert child.status is ExecutionStatus.SUCCEEDED
    for stage in ("annotate", "index"):
        prefix = f"executions/{child.id}/enrich/{stage}/"
        assert len(list(world.components.artefacts.list(prefix))) == 240
    assert list(world.components.artefacts.list(f"executions/{child.id}/ingest/")) == []
    assert world.components.executions.counter(world.parent.id, "fetch") == 240
    source = child.replay_source
    assert source is not None
    assert (source.parent_execution_id, source.from_stage, source.to_route, source.queue) == (
        world.parent.id,
        "parse",
        "enrich",
        "news.enrich",
    )
    assert (source.confirmed, source.total, source.reason, source.dagster_run_id) == (
        240,
        240,
        "e2e",
        result.run_id,
    )
    assert tags["factflow/source_execution"] == world.parent.id
    assert tags["factflow/child_execution"] == child.id
    assert (tags["factflow/from_stage"], tags["factflow/to_route"]) == ("parse", "enrich")
    assert child.id in [c.id for c in world.components.executions.children(world.parent.id)]


def test_the_snapshot_decides_the_queue_on_rabbitmq(world: World, broker: str) -> None:
    today = ConfigSnapshot.load(sample_config("news-v2"))
    declare_queues(world.components.publisher, today)
    result = world.service().run(ReplayRequest.parse(world.good_request()))
    assert result.plan.queue == "news.enrich"
    assert queue_depth(broker, "news.v2.enrich") == 0
    assert queue_depth(broker, "news.enrich") == 241


def test_cancel_then_resume_delivers_each_artefact_exactly_once(world: World, broker: str) -> None:
    service = world.service(progress_every=10)
    seen: list[int] = []
    # Rate-limited so the replay is still sending when the stop comes: with 240 artefacts and
    # a 256-message window, everything would otherwise be in flight before the first confirm.
    first = service.run(
        ReplayRequest.parse(world.good_request(rate=150.0)),
        should_stop=lambda: bool(seen) and seen[-1] >= 100,
        on_progress=lambda p: seen.append(p.confirmed),
    )
    assert first.state == "CANCELLED"
    assert queue_depth(broker, "news.enrich") == first.confirmed
    second = service.resume(first.replay_id)
    assert second.state == "SUCCEEDED"
    received = drain(broker, "news.enrich")
    ids = [p.message_id for p, _ in received if p.type == "factflow.artefact"]
    assert len(ids) == 240
    assert len(set(ids)) == 240
    keys = sorted(
        p.headers[Headers.OBJECT_KEY] for p, _ in received if p.type == "factflow.artefact"
    )
    assert keys[0].endswith("news-0001.json")
    assert keys[-1].endswith("news-0240.json")


@pytest.fixture(scope="module")
def private_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitMQServer]:
    yield from serving(RabbitMQServer(tmp_path_factory.mktemp("private-rabbitmq")))


def test_a_broker_restarted_mid_replay_completes_with_only_unconfirmed_resent(
    world: World, private_broker: RabbitMQServer
) -> None:
    window = 32
    publisher = RabbitMQPublisher(
        private_broker.url,
        window=window,
        retry=RetryPolicy(max_retries=30, interval_start=0.5, interval_step=0.5, interval_max=2.0),
    )
    reset_queues(private_broker.url, ["news.enrich"])
    publisher.declare_queue("news.enrich")
    time.sleep(3)  # let the broker settle a fresh durable queue before a fault
    service = DetachedReplayService(
        artefacts=world.components.artefacts,
        executions=world.components.executions,
        publisher=publisher,
        progress_every=10,
    )
    seen: list[int] = []
    restarted = threading.Event()

    def restart_when_halfway() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (seen and seen[-1] >= 80):
            time.sleep(0.02)
        private_broker.restart()
        restarted.set()

    restarter = threading.Thread(target=restart_when_halfway)
    restarter.start()
    try:
        result = service.run(
            ReplayRequest.parse(world.good_request(rate=40.0)),
            on_progress=lambda p: seen.append(p.confirmed),
        )
    finally:
        restarter.join()
        publisher.close()
    assert restarted.is_set()
    assert (result.state, result.confirmed) == ("SUCCEEDED", 240)
    assert result.resent > 0 or result.confirmed == 240
    received = drain(private_broker.url, "news.enrich")
    ids = [p.message_id for p, _ in received if p.type == "factflow.artefact"]
    counts = collections.Counter(ids)
    assert len(counts) == 240  # every artefact arrived
    duplicates = sum(n - 1 for n in counts.values())
    assert duplicates <= result.resent
    assert duplicates <= window  # only unconfirmed messages can come twice, same id
