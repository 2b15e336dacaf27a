"""DetachedReplayService on embedded components: plan, publish, provenance, cancel, faults."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import update
from support.replay_cases import bad_inputs
from support.worlds import World, news_world

from factflow_replay_dagster.errors import (
    ArtefactNotFoundError,
    IncompleteArtefactsError,
    InvalidInputError,
    MessageTooLargeError,
    QueueNotFoundError,
    ReplayError,
)
from factflow_replay_dagster.executions import ExecutionStatus, ReplayState
from factflow_replay_dagster.executions.models import Stage
from factflow_replay_dagster.layout import stage_prefix
from factflow_replay_dagster.messages import Headers, artefact_message_id
from factflow_replay_dagster.pipelines import sample_config
from factflow_replay_dagster.queues.embedded import EmbeddedQueue
from factflow_replay_dagster.replay import DetachedReplayService, ReplayRequest
from factflow_replay_dagster.runtime import declare_queues, run_until_finished
from factflow_replay_dagster.snapshot import ConfigSnapshot
from factflow_replay_dagster.storage.base import StoredObject
from factflow_replay_dagster.storage.local import LocalArtefactStore


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    home = tmp_path_factory.mktemp("replay-home")
    yield from news_world({"FACTFLOW_HOME": str(home)})


@pytest.fixture
def queue(world: World) -> EmbeddedQueue:
    """The embedded queue, with the target queue emptied before each test."""
    return world.emptied_queue()


def drain(queue: EmbeddedQueue, name: str) -> list:
    """Every message on ``name``, acked (an independent consumer)."""
    received = []
    stop = threading.Event()
    if queue.depth(name) == 0:
        return received
    for delivery in queue.consume([name], stop=stop, prefetch=64):
        received.append(delivery)
        delivery.ack()
        if queue.depth(name) == 0:
            stop.set()
    return received


def test_plan_resolves_from_the_snapshot_and_lists(world: World, queue: EmbeddedQueue) -> None:
    plan = world.service().plan(ReplayRequest.parse(world.good_request()))
    prefix = stage_prefix(world.parent.id, "ingest", "parse")
    assert (plan.source_route, plan.to_route, plan.target_stage) == ("ingest", "enrich", "annotate")
    assert plan.queue == "news.enrich"
    assert plan.count == 240
    assert plan.first_key == prefix + "news-0001.json"
    assert plan.last_key == prefix + "news-0240.json"
    assert plan.bytes == sum(i.size for i in world.components.artefacts.list(prefix))


def test_dry_run_publishes_and_creates_nothing(world: World, queue: EmbeddedQueue) -> None:
    executions = world.components.executions
    before = (len(executions.list_executions(limit=1000)), len(executions.list_replays()))
    result = world.service().run(ReplayRequest.parse(world.good_request(dry_run=True)))
    assert result.state == "DRY_RUN"
    assert (result.plan.count, result.replay_id, result.child_execution_id) == (240, None, None)
    assert queue.depth("news.enrich") == 0
    assert (len(executions.list_executions(limit=1000)), len(executions.list_replays())) == before


def test_replay_publishes_every_artefact_with_identity_and_provenance(
    world: World, queue: EmbeddedQueue
) -> None:
    result = world.service().run(ReplayRequest.parse(world.good_request(reason="new annotator")))
    assert (result.state, result.confirmed, result.total) == ("SUCCEEDED", 240, 240)
    messages = drain(queue, "news.enrich")
    artefacts = [m for m in messages if m.type == "factflow.artefact"]
    [end] = [m for m in messages if m.type == "factflow.end"]
    assert len(artefacts) == 240
    prefix = stage_prefix(world.parent.id, "ingest", "parse")
    for message, info in zip(artefacts, world.components.artefacts.list(prefix), strict=True):
        etag = world.components.artefacts.stat(info.key).etag  # the content's MD5
        assert message.message_id == artefact_message_id(world.parent.id, info.key, str(etag))
        assert message.headers[Headers.ETAG] == etag
        assert message.body == world.components.artefacts.read(info.key)
        assert message.headers[Headers.SOURCE_EXECUTION] == world.parent.id
        assert message.headers[Headers.SOURCE_ROUTE] == "ingest"
        assert message.headers[Headers.SOURCE_STAGE] == "parse"
        assert message.headers[Headers.OBJECT_KEY] == info.key
        assert message.headers[Headers.REPLAY_ID] == result.replay_id
        assert message.headers[Headers.CHILD_EXECUTION] == result.child_execution_id
    assert b'"count":240' in end.body
    child = world.components.executions.get_execution(result.child_execution_id)
    assert child.parent_id == world.parent.id
    assert child.snapshot == world.parent.snapshot
    source = child.replay_source
    assert source is not None
    assert (source.parent_execution_id, source.source_route, source.from_stage) == (
        world.parent.id,
        "ingest",
        "parse",
    )
    assert (source.to_route, source.queue, source.total, source.confirmed) == (
        "enrich",
        "news.enrich",
        240,
        240,
    )
    assert source.reason == "new annotator"
    assert source.finished_at is not None
    assert child.id in [c.id for c in world.components.executions.children(world.parent.id)]
    assert world.components.executions.get_replay(result.replay_id).state is ReplayState.SUCCEEDED


def test_the_route_resolves_from_the_parents_snapshot_not_todays_config(
    world: World, queue: EmbeddedQueue
) -> None:
    """Today's config (news v2) names route ``enrich`` too, with another queue."""
    today = ConfigSnapshot.load(sample_config("news-v2"))
    assert today.config.route("enrich").queue == "news.v2.enrich"
    declare_queues(queue, today)
    queue.purge("news.v2.enrich")
    result = world.service().run(ReplayRequest.parse(world.good_request()))
    assert result.plan.queue == "news.enrich"
    assert queue.depth("news.v2.enrich") == 0
    assert queue.depth("news.enrich") == 241  # 240 artefacts and the end marker
    child = world.components.executions.get_execution(result.child_execution_id)
    assert child.snapshot == world.parent.snapshot  # the child keeps the parent's snapshot
    assert child.replay_source is not None
    assert child.replay_source.queue == "news.enrich"


def test_the_same_artefact_replayed_twice_keeps_its_message_id(
    world: World, queue: EmbeddedQueue
) -> None:
    service = world.service()
    service.run(ReplayRequest.parse(world.good_request(limit=5)))
    first = [m.message_id for m in drain(queue, "news.enrich") if m.type == "factflow.artefact"]
    service.run(ReplayRequest.parse(world.good_request(limit=5)))
    second = [m.message_id for m in drain(queue, "news.enrich") if m.type == "factflow.artefact"]
    assert first == second
    assert len(set(first)) == 5


def test_match_limit_and_rate_select_artefacts(world: World, queue: EmbeddedQueue) -> None:
    request = world.good_request(match="news-00[0-4]*.json", limit=7, rate=500.0)
    result = world.service().run(ReplayRequest.parse(request))
    keys = [
        m.headers[Headers.OBJECT_KEY]
        for m in drain(queue, "news.enrich")
        if m.type == "factflow.artefact"
    ]
    assert result.confirmed == 7
    assert [k.rsplit("/", 1)[1] for k in keys] == [f"news-{i:04d}.json" for i in range(1, 8)]


@pytest.mark.parametrize("case", bad_inputs("PARENT"), ids=lambda c: c.id)
def test_bad_input_is_rejected_and_changes_nothing(
    world: World, queue: EmbeddedQueue, case
) -> None:
    executions = world.components.executions
    before = (len(executions.list_executions(limit=1000)), len(executions.list_replays()))

    def attempt() -> None:
        world.service().run(ReplayRequest.parse(world.good_request(**case.request)))

    with pytest.raises(case.error) as raised:
        attempt()
    assert case.names in str(raised.value)
    assert raised.value.exit_code == case.exit_code
    assert queue.depth("news.enrich") == 0
    assert (len(executions.list_executions(limit=1000)), len(executions.list_replays())) == before


def test_a_missing_queue_fails_before_anything_is_published(
    world: World, queue: EmbeddedQueue
) -> None:
    executions = world.components.executions
    before = len(executions.list_replays())
    fresh = EmbeddedQueue(Path(queue.path).with_name("other-queue.db"))
    service = world.service()
    service.publisher = fresh
    with pytest.raises(QueueNotFoundError, match=r"news\.enrich"):
        service.run(ReplayRequest.parse(world.good_request()))
    assert len(executions.list_replays()) == before


def service_missing_one_artefact(world: World, tmp_path: Path) -> DetachedReplayService:
    """A service whose store is a copy of the parent's parse artefacts without news-0100."""
    store = LocalArtefactStore(tmp_path / "copy")
    prefix = stage_prefix(world.parent.id, "ingest", "parse")
    for info in world.components.artefacts.list(prefix):
        if not info.key.endswith("news-0100.json"):
            store.write(info.key, world.components.artefacts.read(info.key))
    service = world.service()
    service.artefacts = store
    return service


def test_a_lost_artefact_fails_the_plan(world: World, queue: EmbeddedQueue, tmp_path: Path) -> None:
    service = service_missing_one_artefact(world, tmp_path)
    with pytest.raises(IncompleteArtefactsError, match=r"recorded 240 .* holds 239 of them"):
        service.run(ReplayRequest.parse(world.good_request()))
    assert queue.depth("news.enrich") == 0


@pytest.mark.parametrize(
    "selection", [{"match": "news-01*"}, {"limit": 150}, {"match": "news-0*", "limit": 120}, {}]
)
def test_a_lost_artefact_fails_any_selection_that_holds_it(
    world: World, queue: EmbeddedQueue, tmp_path: Path, selection: dict[str, object]
) -> None:
    """The stage's manifest (the keys it recorded storing) makes completeness exact for a
    filtered replay too, not only for the whole stage."""
    service = service_missing_one_artefact(world, tmp_path)
    request = ReplayRequest.parse(world.good_request(**selection))
    with pytest.raises(IncompleteArtefactsError, match=r"1 missing \(the first: .*news-0100") as e:
        service.plan(request)
    assert e.value.exit_code == 3
    assert queue.depth("news.enrich") == 0
    # A selection that does not hold the lost object is complete, and says how it knows.
    plan = service.plan(ReplayRequest.parse(world.good_request(match="news-02*")))
    assert (plan.count, plan.completeness) == (41, "manifest")  # news-0200 .. news-0240


def test_without_a_manifest_a_filtered_plan_says_completeness_is_unknown(
    world: World, queue: EmbeddedQueue
) -> None:
    service = world.service()
    assert service.plan(ReplayRequest.parse(world.good_request())).completeness == "manifest"
    executions = world.components.executions
    with executions._tx() as session:  # an execution recorded before manifests existed
        session.execute(
            update(Stage)
            .where(Stage.execution_id == world.parent.id, Stage.stage == "parse")
            .values(manifest=False)
        )
    try:
        filtered = service.plan(ReplayRequest.parse(world.good_request(match="news-01*")))
        whole = service.plan(ReplayRequest.parse(world.good_request()))
    finally:
        with executions._tx() as session:
            session.execute(
                update(Stage)
                .where(Stage.execution_id == world.parent.id, Stage.stage == "parse")
                .values(manifest=True)
            )
    assert (filtered.count, filtered.completeness) == (100, "unknown")
    assert whole.completeness == "count"


def test_an_artefact_bigger_than_the_broker_takes_fails_the_plan(
    world: World, queue: EmbeddedQueue, tmp_path: Path
) -> None:
    store = LocalArtefactStore(tmp_path / "copy")
    prefix = stage_prefix(world.parent.id, "ingest", "parse")
    for info in world.components.artefacts.list(prefix):
        store.write(info.key, world.components.artefacts.read(info.key))
    big = f"{prefix}news-0100.json"
    store.write(big, b"x" * 1024 * 1024)
    limited = EmbeddedQueue(queue.path, max_message_bytes=512 * 1024)
    service = world.service()
    service.artefacts, service.publisher = store, limited
    before = len(world.components.executions.list_replays())
    with pytest.raises(MessageTooLargeError, match=r"news-0100\.json.*1,048,576 bytes") as caught:
        service.run(ReplayRequest.parse(world.good_request()))
    assert caught.value.exit_code == 2
    assert queue.depth("news.enrich") == 0
    assert len(world.components.executions.list_replays()) == before


class _VanishingStore(LocalArtefactStore):
    """A real folder store where one object disappears just before it is read."""

    vanish: str = ""

    def read_many(self, keys: Iterable[str], *, concurrency: int = 8) -> Iterator[StoredObject]:
        def deleting(keys: Iterable[str]) -> Iterator[str]:
            for key in keys:
                if key.endswith(self.vanish):
                    (self.root / key).unlink(missing_ok=True)
                yield key

        return super().read_many(deleting(keys), concurrency=concurrency)


def test_an_artefact_vanishing_mid_replay_fails_with_its_key_and_progress_saved(
    world: World, queue: EmbeddedQueue, tmp_path: Path
) -> None:
    store = _VanishingStore(tmp_path / "copy")
    store.vanish = "news-0150.json"
    prefix = stage_prefix(world.parent.id, "ingest", "parse")
    for info in world.components.artefacts.list(prefix):
        store.write(info.key, world.components.artefacts.read(info.key))
    service = world.service(read_ahead=1)
    service.artefacts = store
    with pytest.raises(ArtefactNotFoundError, match=r"news-0150\.json") as raised:
        service.run(ReplayRequest.parse(world.good_request()))
    assert raised.value.exit_code == 3
    [replay] = [r for r in world.components.executions.list_replays() if r.state == "FAILED"][-1:]
    assert replay.confirmed == 149
    assert replay.last_confirmed_key == prefix + "news-0149.json"
    assert "news-0150.json" in (replay.error or "")
    child = world.components.executions.get_execution(replay.child_execution_id)
    assert child.status is ExecutionStatus.FAILED
    assert "149 of 240" in (child.error or "")


def test_cancel_then_resume_sends_each_artefact_exactly_once(
    world: World, queue: EmbeddedQueue
) -> None:
    service = world.service(progress_every=10)
    confirmed: list[int] = []
    result = service.run(
        ReplayRequest.parse(world.good_request()),
        should_stop=lambda: bool(confirmed) and confirmed[-1] >= 90,
        on_progress=lambda p: confirmed.append(p.confirmed),
    )
    assert result.state == "CANCELLED"
    assert 90 <= result.confirmed < 240
    executions = world.components.executions
    assert executions.get_replay(result.replay_id).state is ReplayState.CANCELLED
    assert executions.get_replay(result.replay_id).confirmed == result.confirmed
    assert executions.get_execution(result.child_execution_id).status is ExecutionStatus.CANCELLED
    with pytest.raises(InvalidInputError, match="from_stage"):
        service.run(
            ReplayRequest.parse(world.good_request(from_stage="fetch")),
            resume_replay_id=result.replay_id,
        )
    resumed = service.resume(result.replay_id)
    assert (resumed.state, resumed.confirmed, resumed.replay_id) == (
        "SUCCEEDED",
        240,
        result.replay_id,
    )
    received = [m for m in drain(queue, "news.enrich") if m.type == "factflow.artefact"]
    ids = [m.message_id for m in received]
    assert len(ids) == 240
    assert len(set(ids)) == 240


def small_batches(world: World) -> DetachedReplayService:
    """The service on the world's queue file, committing every 10 messages (not 200)."""
    queue = world.components.publisher
    assert isinstance(queue, EmbeddedQueue)
    return DetachedReplayService(
        artefacts=world.components.artefacts,
        executions=world.components.executions,
        publisher=EmbeddedQueue(queue.path, batch_size=10),
        progress_every=10,
    )


def test_a_shard_whose_replay_was_closed_elsewhere_stops_at_its_next_save(
    world: World, queue: EmbeddedQueue
) -> None:
    # A step process that outlived its run: the replay failure sensor closed the replay.
    service = small_batches(world)
    executions = world.components.executions
    start = service.start(ReplayRequest.parse(world.good_request()))
    assert start is not None

    def closed_by_the_sensor(progress: object) -> None:
        if executions.get_replay(start.replay_id).state is ReplayState.RUNNING:
            executions.set_replay_state(start.replay_id, ReplayState.FAILED, error="run died")

    with pytest.raises(ReplayError, match="marked FAILED"):
        service.publish_shard(start, start.plan.shards[0], on_progress=closed_by_the_sensor)
    record = executions.get_replay(start.replay_id)
    assert (record.state, record.error) == (ReplayState.FAILED, "run died")  # its own reason
    assert executions.replay_shards(start.replay_id)[0].state is ReplayState.FAILED
    assert 10 <= record.confirmed < 240
    assert queue.depth("news.enrich") == record.confirmed  # what it sent, all recorded
    assert service.resume(start.replay_id).state == "SUCCEEDED"
    ids = [m.message_id for m in drain(queue, "news.enrich") if m.type == "factflow.artefact"]
    assert (len(ids), len(set(ids))) == (240, 240)


def test_a_shard_whose_replay_was_resumed_elsewhere_stops_and_records_nothing(
    world: World, queue: EmbeddedQueue
) -> None:
    service = small_batches(world)
    executions = world.components.executions
    request = ReplayRequest.parse(world.good_request())
    start = service.start(request)
    assert start is not None
    resumed = []

    def resumed_by_another_run(progress: object) -> None:
        if not resumed:  # the sensor closes it, then a resume's run takes it over
            executions.set_replay_state(start.replay_id, ReplayState.FAILED, error="run died")
            again = request.model_copy(update={"dagster_run_id": "run-2"})
            resumed.append(service.start(again, resume_replay_id=start.replay_id))

    with pytest.raises(ReplayError, match="resumed"):
        service.publish_shard(start, start.plan.shards[0], on_progress=resumed_by_another_run)
    [takeover] = resumed
    assert takeover is not None
    shard = executions.replay_shards(start.replay_id)[0]
    assert shard.state is ReplayState.RUNNING  # the resume's, untouched by the old process
    sent_by_the_old = queue.depth("news.enrich")
    assert service.publish_shard(takeover, takeover.plan.shards[0]).state == "SUCCEEDED"
    service.finish(takeover)
    record = executions.get_replay(start.replay_id)
    assert (record.state, record.confirmed, record.dagster_run_id) == (
        ReplayState.SUCCEEDED,
        240,
        "run-2",
    )
    ids = [m.message_id for m in drain(queue, "news.enrich") if m.type == "factflow.artefact"]
    duplicates = len(ids) - len(set(ids))
    assert len(set(ids)) == 240
    assert duplicates <= sent_by_the_old - takeover.plan.shards[0].already_confirmed
    print(f"\ntaken over: old process sent {sent_by_the_old}, duplicates {duplicates}")


def test_the_child_runs_to_completion_after_cancel_and_resume(
    world: World, queue: EmbeddedQueue
) -> None:
    service = world.service(progress_every=10)
    seen: list[int] = []
    first = service.run(
        ReplayRequest.parse(world.good_request()),
        should_stop=lambda: bool(seen) and seen[-1] >= 50,
        on_progress=lambda p: seen.append(p.confirmed),
    )
    assert first.state == "CANCELLED"
    service.resume(first.replay_id)
    child = run_until_finished(
        first.child_execution_id,
        world.news.config.queues(),
        **world.components.runtime(),
        timeout=120,
    )
    assert child.status is ExecutionStatus.SUCCEEDED
    lineage = world.components.executions.lineage(child.id)
    assert [(r.stage, r.artefact_count) for r in lineage] == [("annotate", 240), ("index", 240)]
    assert world.components.executions.counter(world.parent.id, "fetch") == 240


def test_running_a_request_again_resumes_its_replay(world: World, queue: EmbeddedQueue) -> None:
    """What a Dagster run retry does: the same request (same replay id) once more."""
    service = world.service(progress_every=10)
    seen: list[int] = []
    request = ReplayRequest.parse(world.good_request(replay_id="replay-retry-test"))
    first = service.run(
        request,
        should_stop=lambda: bool(seen) and seen[-1] >= 50,
        on_progress=lambda p: seen.append(p.confirmed),
    )
    assert first.state == "CANCELLED"
    again = service.run(request)
    assert (again.state, again.replay_id, again.confirmed) == (
        "SUCCEEDED",
        "replay-retry-test",
        240,
    )
    ids = [m.message_id for m in drain(queue, "news.enrich") if m.type == "factflow.artefact"]
    assert len(ids) == len(set(ids)) == 240
    with pytest.raises(InvalidInputError, match="SUCCEEDED"):
        service.run(request)  # nothing left to do, and it says so
