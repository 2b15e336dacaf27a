"""replay_job through Dagster (execute_in_process): tags, materialization, errors, cancel."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator

import dagster as dg
import pytest
from support.replay_cases import bad_inputs
from support.worlds import World, news_world

from factflow_replay_dagster.defs.assets import stage_asset_key
from factflow_replay_dagster.defs.definitions import build_definitions
from factflow_replay_dagster.errors import UnknownReplayError
from factflow_replay_dagster.executions import ExecutionStatus, ReplayState
from factflow_replay_dagster.queues.embedded import EmbeddedQueue
from factflow_replay_dagster.settings import Settings


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    home = tmp_path_factory.mktemp("job-home")
    yield from news_world({"FACTFLOW_HOME": str(home)})


@pytest.fixture(scope="module")
def job(world: World) -> dg.JobDefinition:
    return build_definitions(Settings.from_env(world.env)).resolve_job_def("replay_job")


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as test_instance:
        yield test_instance


@pytest.fixture
def queue(world: World) -> EmbeddedQueue:
    return world.emptied_queue("news.enrich")


def failure_of(result: dg.ExecuteInProcessResult) -> dg.Failure | None:
    for event in result.all_events:
        if event.is_step_failure:
            return event.step_failure_data.user_failure_data  # type: ignore[return-value]
    return None


def test_replay_job_publishes_tags_and_records_provenance(
    world: World, job: dg.JobDefinition, instance: dg.DagsterInstance, queue: EmbeddedQueue
) -> None:
    result = job.execute_in_process(
        run_config=world.good_request(reason="job test"), instance=instance
    )
    assert result.success
    outcome = result.output_for_node("finish_replay")
    assert (outcome.state, outcome.confirmed) == ("SUCCEEDED", 240)
    assert outcome.replay_id == f"replay-{result.run_id}"  # a retry of this run resumes it
    tags = instance.get_run_by_id(result.run_id).tags
    assert tags["factflow/source_execution"] == world.parent.id
    assert tags["factflow/child_execution"] == outcome.child_execution_id
    assert tags["factflow/from_stage"] == "parse"
    assert tags["factflow/to_route"] == "enrich"
    assert tags["factflow/replay_id"] == outcome.replay_id
    child = world.components.executions.get_execution(outcome.child_execution_id)
    assert child.replay_source is not None
    assert child.replay_source.dagster_run_id == result.run_id
    [materialization] = result.asset_materializations_for_node("finish_replay")
    assert materialization.asset_key == stage_asset_key("news", "enrich", "annotate")
    assert materialization.partition == outcome.child_execution_id
    metadata = {key: value.value for key, value in materialization.metadata.items()}
    assert metadata["source_execution"] == world.parent.id
    assert (metadata["source_route"], metadata["source_stage"]) == ("ingest", "parse")
    assert (metadata["confirmed"], metadata["queue"]) == (240, "news.enrich")
    assert metadata["reason"] == "job test"
    assert world.parent.id in str(metadata["source_partition"])
    assert outcome.child_execution_id in instance.get_dynamic_partitions("news__executions")
    assert queue.depth("news.enrich") == 241


def test_the_launchpad_config_is_typed_and_described(job: dg.JobDefinition) -> None:
    fields = job.run_config_schema.config_type.fields  # type: ignore[attr-defined]
    assert {
        "source_execution_id",
        "from_stage",
        "to_route",
        "source_route",
        "match",
        "limit",
        "rate",
        "dry_run",
        "reason",
        "resume_replay_id",
    } <= set(fields)
    assert all(field.description for field in fields.values())
    assert fields["source_execution_id"].is_required
    assert not fields["limit"].is_required
    with pytest.raises(dg.DagsterInvalidConfigError):
        job.execute_in_process(run_config={"from_stage": "parse", "to_route": "enrich"})


def test_shards_choose_the_default_executors_processes_and_a_given_executor_its_own(
    world: World,
) -> None:
    config = {**world.good_request(), "shards": 4}
    default = build_definitions(Settings.from_env(world.env)).resolve_job_def("replay_job")
    resolved = dg.validate_run_config(default, config)["execution"]
    assert resolved["multi_or_in_process_executor"]["multiprocess"]["max_concurrent"] == 4
    # A deployment's executor (k8s_job_executor, say) has its own config schema: the job
    # emits no execution section then, and that executor's configuration decides.
    pods = dg.multiprocess_executor.configured({"max_concurrent": 2}, name="pods")
    given = build_definitions(Settings.from_env(world.env), executor=pods)
    job = given.resolve_job_def("replay_job")
    assert job.executor_def is pods
    assert dg.validate_run_config(job, config)["execution"] == {
        "pods": {"max_concurrent": 2, "retries": {"enabled": {}}}
    }
    assert all(j.executor_def is pods for j in given.resolve_all_job_defs())


def test_dry_run_creates_and_publishes_nothing(
    world: World, job: dg.JobDefinition, instance: dg.DagsterInstance, queue: EmbeddedQueue
) -> None:
    before = len(world.components.executions.list_replays())
    result = job.execute_in_process(run_config=world.good_request(dry_run=True), instance=instance)
    assert result.success
    assert result.output_for_node("finish_replay").state == "DRY_RUN"
    assert result.output_for_node("plan_replay", "plan").count == 240
    assert len(world.components.executions.list_replays()) == before
    assert queue.depth("news.enrich") == 0


@pytest.mark.parametrize("case", bad_inputs("PARENT"), ids=lambda c: c.id)
def test_bad_input_fails_the_run_clearly_and_changes_nothing(
    world: World, job: dg.JobDefinition, instance: dg.DagsterInstance, queue: EmbeddedQueue, case
) -> None:
    before = len(world.components.executions.list_replays())
    result = job.execute_in_process(
        run_config=world.good_request(**case.request), instance=instance, raise_on_error=False
    )
    assert not result.success
    failure = failure_of(result)
    assert failure is not None
    assert case.names in (failure.description or "")
    assert failure.metadata["error"].value == case.error.__name__
    assert failure.metadata["exit_code"].value == case.exit_code
    assert queue.depth("news.enrich") == 0
    assert len(world.components.executions.list_replays()) == before


@pytest.mark.parametrize("how", ["terminate", "ctrl-c"])
def test_terminating_the_run_stops_cleanly_and_resume_sends_the_rest_once(
    world: World,
    job: dg.JobDefinition,
    instance: dg.DagsterInstance,
    queue: EmbeddedQueue,
    how: str,
) -> None:
    """Terminating a run marks it CANCELING and sends SIGINT to its process (what the UI's
    terminate does); a Ctrl-C of a CLI run is the SIGINT alone."""
    replay_id = f"replay-cancel-{how}"
    executions = world.components.executions

    def interrupt_when_publishing() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if executions.get_replay(replay_id).confirmed >= 10:
                    break
            except UnknownReplayError:
                pass
            time.sleep(0.05)
        if how == "terminate":
            [run] = instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))
            instance.report_run_canceling(run)
        os.kill(os.getpid(), signal.SIGINT)

    killer = threading.Thread(target=interrupt_when_publishing)
    killer.start()
    config = world.good_request(limit=120, rate=40.0, replay_id=replay_id)
    started = time.monotonic()
    result = job.execute_in_process(run_config=config, instance=instance, raise_on_error=False)
    killer.join()
    assert time.monotonic() - started < 20  # stopped, not ran to the end at 40 msg/s
    assert instance.get_run_by_id(result.run_id).status == dg.DagsterRunStatus.CANCELED
    record = executions.get_replay(replay_id)
    assert record.state is ReplayState.CANCELLED
    assert 10 <= record.confirmed < 120
    child = executions.get_execution(record.child_execution_id)
    assert child.status is ExecutionStatus.CANCELLED
    assert queue.depth("news.enrich") == record.confirmed  # exactly what was confirmed

    resumed = job.execute_in_process(
        run_config={**world.good_request(limit=120, rate=1000.0), "resume_replay_id": replay_id},
        instance=instance,
    )
    assert resumed.output_for_node("finish_replay").confirmed == 120
    assert executions.get_replay(replay_id).state is ReplayState.SUCCEEDED
    ids = []
    stop = threading.Event()
    for delivery in queue.consume(["news.enrich"], stop=stop, prefetch=64):
        if delivery.type == "factflow.artefact":
            ids.append(delivery.message_id)
        delivery.ack()
        if queue.depth("news.enrich") == 0:
            stop.set()
    assert len(ids) == 120
    assert len(set(ids)) == 120


def test_settings_reach_the_job_resources(tmp_path) -> None:
    settings = Settings.from_env(
        {
            "FACTFLOW_HOME": str(tmp_path),
            "FACTFLOW_PROGRESS_EVERY": "7",
            "FACTFLOW_CONFIRM_WINDOW": "64",
            "FACTFLOW_RECOVERY_MAX_ATTEMPTS": "5",
        }
    )
    resources = build_definitions(settings).resources or {}
    assert resources["executions"].progress_every == 7
    assert resources["executions"].recovery_max_attempts == 5
    assert resources["queue"].confirm_window == 64
