"""Sensors evaluated as the daemon would (build_sensor_context, evaluate_tick): cursors,
run keys, skip reasons; and the replay run-failure sensor."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
from sqlalchemy import update
from support.worlds import NEWS_STAGES

from factflow_replay_dagster.defs.definitions import build_definitions
from factflow_replay_dagster.defs.resources import ExecutionStoreResource
from factflow_replay_dagster.executions import ExecutionStatus, ExecutionStore, ReplayState
from factflow_replay_dagster.executions.models import Replay
from factflow_replay_dagster.pipelines import sample_config
from factflow_replay_dagster.settings import Settings
from factflow_replay_dagster.snapshot import ConfigSnapshot


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"FACTFLOW_HOME": str(tmp_path)}


@pytest.fixture
def defs(env: dict[str, str]) -> dg.Definitions:
    return build_definitions(Settings.from_env(env))


@pytest.fixture
def store(env: dict[str, str]) -> Iterator[ExecutionStore]:
    with ExecutionStore(Settings.from_env(env).database_url.get_secret_value()) as opened:
        yield opened


@pytest.fixture
def resources(env: dict[str, str]) -> dict[str, object]:
    return {
        "executions": ExecutionStoreResource(
            database_url=Settings.from_env(env).database_url.get_secret_value()
        )
    }


def failing(store: ExecutionStore, execution_id: str, *, succeeded: int = 2) -> None:
    """An execution whose first ``succeeded`` stages succeeded and the next failed."""
    store.create_execution(execution_id, ConfigSnapshot.load(sample_config("news")))
    attempt = store.begin_attempt(execution_id, NEWS_STAGES)
    for route, stage in NEWS_STAGES[:succeeded]:
        store.set_inputs_expected(execution_id, route, stage, attempt, 0)
    route, stage = NEWS_STAGES[succeeded]
    store.fail_stage(execution_id, route, stage, attempt, "boom")


def tick(defs: dg.Definitions, resources, cursor: str | None):
    sensor = defs.resolve_sensor_def("failed_execution_sensor")
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources)
        return sensor.evaluate_tick(context)


def test_first_tick_recovers_what_is_failed_now_once_per_failure(defs, resources, store) -> None:
    failing(store, "exec-a")
    failing(store, "exec-b", succeeded=0)  # nothing to restart from: skipped, with a reason
    result = tick(defs, resources, None)
    assert [r.run_key for r in result.run_requests] == ["recover:exec-a:1"]
    request = result.run_requests[0]
    assert request.run_config == {
        "execution_id": "exec-a",
        "reason": "failed_execution_sensor: stage enrich/annotate failed: boom",
    }
    # Set at submission, where the production profile's run queue limits recoveries by kind.
    assert request.tags["factflow/kind"] == "recovery"
    assert request.tags["factflow/execution"] == "exec-a"
    assert json.loads(result.cursor) == {"seq": store.last_event_seq(), "waiting": []}


def test_a_quiet_tick_skips_and_says_why(defs, resources, store) -> None:
    failing(store, "exec-a")
    cursor = str(store.last_event_seq())
    result = tick(defs, resources, cursor)
    assert result.run_requests == []
    assert result.skip_message == "no execution failed since the last check"
    assert json.loads(result.cursor) == {"seq": int(cursor), "waiting": []}


def test_failures_after_the_cursor_are_found_and_each_failure_gets_its_own_run_key(
    defs, resources, store
) -> None:
    cursor = str(store.last_event_seq())  # the daemon last looked here, then went down
    failing(store, "exec-a")
    first = tick(defs, resources, cursor)
    assert [r.run_key for r in first.run_requests] == ["recover:exec-a:1"]
    # Recovered, and failed again: a second failure, a second run key.
    claim = store.claim_recovery(
        "exec-a",
        restart_route="enrich",
        restart_stage="annotate",
        reset=NEWS_STAGES[2:],
        max_attempts=3,
    )
    store.finish_recovery(claim)
    store.fail_stage("exec-a", "enrich", "annotate", claim.attempt, "boom again")
    second = tick(defs, resources, first.cursor)
    assert [r.run_key for r in second.run_requests] == ["recover:exec-a:2"]
    assert json.loads(second.cursor)["seq"] > json.loads(first.cursor)["seq"]


def test_a_failure_already_being_recovered_is_skipped_with_its_reason(
    defs, resources, store
) -> None:
    cursor = str(store.last_event_seq())
    failing(store, "exec-a")
    store.claim_recovery(
        "exec-a",
        restart_route="enrich",
        restart_stage="annotate",
        reset=NEWS_STAGES[2:],
        max_attempts=3,
    )
    result = tick(defs, resources, cursor)
    assert result.run_requests == []
    assert "exec-a is RECOVERING now" in (result.skip_message or "")


def test_a_failure_waits_while_its_attempt_still_runs_then_is_recovered(
    defs, resources, store
) -> None:
    """parse is still finishing the failed attempt: recovering now would redo it."""
    cursor = str(store.last_event_seq())
    store.create_execution("exec-a", ConfigSnapshot.load(sample_config("news")))
    attempt = store.begin_attempt("exec-a", NEWS_STAGES)
    store.set_inputs_expected("exec-a", "ingest", "fetch", attempt, 0)
    store.mark_stage_running("exec-a", "ingest", "parse", attempt)
    store.fail_stage("exec-a", "enrich", "annotate", attempt, "boom")
    waiting = tick(defs, resources, cursor)
    assert waiting.run_requests == []
    assert "exec-a waits: ingest/parse still running" in (waiting.skip_message or "")
    assert json.loads(waiting.cursor)["waiting"] == ["exec-a"]
    store.set_inputs_expected("exec-a", "ingest", "parse", attempt, 0)  # parse finishes
    ready = tick(defs, resources, waiting.cursor)
    assert [r.run_key for r in ready.run_requests] == ["recover:exec-a:1"]
    assert json.loads(ready.cursor)["waiting"] == []


def test_stages_after_the_failed_one_do_not_make_recovery_wait(defs, resources, store) -> None:
    """index still RUNNING on outputs annotate made before it failed: the recovery resets it."""
    cursor = str(store.last_event_seq())
    store.create_execution("exec-a", ConfigSnapshot.load(sample_config("news")))
    attempt = store.begin_attempt("exec-a", NEWS_STAGES)
    for route, stage in NEWS_STAGES[:2]:
        store.set_inputs_expected("exec-a", route, stage, attempt, 0)
    store.mark_stage_running("exec-a", "enrich", "index", attempt)
    store.fail_stage("exec-a", "enrich", "annotate", attempt, "boom on document 150")
    result = tick(defs, resources, cursor)
    assert [r.run_key for r in result.run_requests] == ["recover:exec-a:1"]


def test_a_stage_that_never_finishes_stops_blocking_after_the_settle_time(store) -> None:
    from factflow_replay_dagster.defs.sensors import failed_execution_requests

    store.create_execution("exec-a", ConfigSnapshot.load(sample_config("news")))
    attempt = store.begin_attempt("exec-a", NEWS_STAGES)
    store.set_inputs_expected("exec-a", "ingest", "fetch", attempt, 0)
    store.mark_stage_running("exec-a", "ingest", "parse", attempt)  # its worker died
    store.fail_stage("exec-a", "enrich", "annotate", attempt, "boom")
    assert failed_execution_requests(store, None, settle_seconds=3600).requests == []
    [request] = failed_execution_requests(store, None, settle_seconds=0).requests
    assert request.run_key == "recover:exec-a:1"


def test_sensor_settings_come_from_the_environment(tmp_path: Path) -> None:
    defs = build_definitions(
        Settings.from_env(
            {
                "FACTFLOW_HOME": str(tmp_path),
                "FACTFLOW_AUTO_RECOVERY": "false",
                "FACTFLOW_RECOVERY_SENSOR_INTERVAL": "7",
            }
        )
    )
    sensor = defs.resolve_sensor_def("failed_execution_sensor")
    assert sensor.minimum_interval_seconds == 7
    assert sensor.default_status is dg.DefaultSensorStatus.STOPPED


def test_replay_failure_sensor_marks_a_crashed_replay_and_its_child_failed(
    defs, resources, store
) -> None:
    job = defs.resolve_job_def("replay_job")
    sensor = defs.resolve_sensor_def("replay_failure_sensor")
    snapshot = ConfigSnapshot.load(sample_config("news"))
    store.create_execution("parent", snapshot)
    with dg.instance_for_test() as instance:
        result = job.execute_in_process(
            run_config={
                "source_execution_id": "parent",
                "from_stage": "parse",
                "to_route": "enrich",
            },
            instance=instance,
            raise_on_error=False,
        )
        assert not result.success
        # What a process killed mid-replay leaves behind: a RUNNING replay of that run.
        record_replay(store, "replay-x", child="child-x", dagster_run_id=result.run_id)
        store.create_execution("child-x", snapshot, parent_id="parent", origin="replay")
        store.set_replay_state("replay-x", ReplayState.RUNNING)
        context = dg.build_run_status_sensor_context(
            sensor_name="replay_failure_sensor",
            dagster_instance=instance,
            dagster_run=result.dagster_run,
            dagster_event=result.get_run_failure_event(),
            resources=resources,
        ).for_run_failure()
        assert sensor(context) is None
        assert store.get_replay("replay-x").state is ReplayState.FAILED
        child = store.get_execution("child-x")
        assert child.status is ExecutionStatus.FAILED
        assert "replay-x" in (child.error or "")
        again = sensor(context)  # nothing left RUNNING: a skip that says so
        assert isinstance(again, dg.SkipReason)
        assert result.run_id in (again.skip_message or "")


def test_stale_replay_sensor_closes_a_replay_whose_process_died(defs, resources, store) -> None:
    """A kill -9 leaves the replay RUNNING and its run STARTED; once its heartbeat is older
    than the stale time the sensor marks the replay FAILED (resumable) and fails the run."""
    snapshot = ConfigSnapshot.load(sample_config("news"))
    store.create_execution("parent", snapshot)
    store.create_execution("child-y", snapshot, parent_id="parent", origin="replay")
    sensor = defs.resolve_sensor_def("stale_replay_sensor")
    with dg.instance_for_test() as instance:
        run = instance.create_run_for_job(
            defs.resolve_job_def("replay_job"),
            run_config={"source_execution_id": "parent", "from_stage": "p", "to_route": "r"},
        )
        instance.run_storage.handle_run_event(  # started by a worker that then died
            run.run_id,
            dg.DagsterEvent(
                event_type_value=dg.DagsterEventType.RUN_START.value, job_name=run.job_name
            ),
        )
        assert instance.get_run_by_id(run.run_id).status is dg.DagsterRunStatus.STARTED
        record_replay(store, "replay-y", child="child-y", dagster_run_id=run.run_id)
        store.set_replay_state("replay-y", ReplayState.RUNNING, owner="host pid 1")
        context = dg.build_sensor_context(instance=instance, resources=resources)
        alive = sensor(context)
        assert "alive" in str(alive.skip_message)  # a fresh heartbeat: left alone
        assert store.get_replay("replay-y").state is ReplayState.RUNNING
        with store._tx() as session:  # its process stopped beating long ago
            session.execute(
                update(Replay)
                .where(Replay.replay_id == "replay-y")
                .values(heartbeat_at=datetime.now(UTC) - timedelta(hours=1))
            )
        closed = sensor(context)
        assert "replay-y" in str(closed.skip_message)
        replay = store.get_replay("replay-y")
        assert replay.state is ReplayState.FAILED
        assert "host pid 1" in (replay.error or "")
        assert store.get_execution("child-y").status is ExecutionStatus.FAILED
        after = instance.get_run_by_id(run.run_id)
        assert after is not None
        assert after.status is dg.DagsterRunStatus.FAILURE


def record_replay(
    store: ExecutionStore, replay_id: str, *, child: str, dagster_run_id: str
) -> None:
    """A replay of ten of the parent's parse artefacts into enrich, made by ``dagster_run_id``."""
    store.create_replay(
        replay_id,
        source_execution_id="parent",
        source_route="ingest",
        from_stage="parse",
        to_route="enrich",
        queue="news.enrich",
        request={},
        total=10,
        bytes_total=10,
        first_key="a",
        last_key="b",
        child_execution_id=child,
        dagster_run_id=dagster_run_id,
    )
