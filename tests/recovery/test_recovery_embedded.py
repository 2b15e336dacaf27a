"""Rerun and recovery on embedded components: restart from stored artefacts, refuse clearly."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.worlds import small_news

from factflow_replay_dagster.connect import Components, connect
from factflow_replay_dagster.errors import (
    AlreadyRecoveringError,
    IncompleteArtefactsError,
    InvalidStateError,
    NoArtefactsError,
    NotFailedError,
    NothingSucceededError,
    NotSettledError,
    RecoveryLimitError,
    UnknownExecutionError,
)
from factflow_replay_dagster.executions import ExecutionRecord, ExecutionStatus, StageStatus
from factflow_replay_dagster.queues.embedded import EmbeddedQueue
from factflow_replay_dagster.recovery import RecoveryManager, RerunService
from factflow_replay_dagster.replay import DetachedReplayService, ReplayRequest
from factflow_replay_dagster.runtime import run_pipeline, run_until_finished
from factflow_replay_dagster.settings import Settings
from factflow_replay_dagster.snapshot import ConfigSnapshot

DOCS = 40  # documents fetched: recovery logic does not need all 240


@pytest.fixture
def components(tmp_path: Path) -> Iterator[Components]:
    with connect(Settings.from_env({"FACTFLOW_HOME": str(tmp_path)})) as opened:
        yield opened


@pytest.fixture
def news() -> ConfigSnapshot:
    return small_news(DOCS)


def manager(c: Components, **options: int) -> RecoveryManager:
    return RecoveryManager(
        artefacts=c.artefacts, executions=c.executions, publisher=c.publisher, **options
    )


def queue_depths(c: Components, news: ConfigSnapshot) -> dict[str, int]:
    assert isinstance(c.publisher, EmbeddedQueue)
    return {q: c.publisher.depth(q) for q in news.config.queues()}


def failed_at(c: Components, news: ConfigSnapshot, stage: str, monkeypatch) -> ExecutionRecord:
    monkeypatch.setenv("FACTFLOW_FAIL_STAGES", stage)
    record = run_pipeline(news, **c.runtime(), timeout=120)
    monkeypatch.delenv("FACTFLOW_FAIL_STAGES")
    assert record.status is ExecutionStatus.FAILED
    for queue in news.config.queues():  # what the failed attempt left behind
        c.publisher.purge(queue)  # type: ignore[attr-defined]
    return record


def test_recovery_restarts_at_the_failed_stage_and_completes(
    components: Components, news: ConfigSnapshot, monkeypatch
) -> None:
    failed = failed_at(components, news, "annotate", monkeypatch)
    result = manager(components).recover(failed.id, reason="annotator fixed")
    assert (result.restart_route, result.restart_stage) == ("enrich", "annotate")
    assert (result.input.route, result.input.stage, result.input_artefacts) == (
        "ingest",
        "parse",
        DOCS,
    )
    assert (result.recovery, result.attempt) == (1, 2)
    assert queue_depths(components, news)["news.enrich"] == 1  # exactly one init message
    assert components.executions.get_execution(failed.id).status is ExecutionStatus.RECOVERING
    done = run_until_finished(failed.id, news.config.queues(), **components.runtime(), timeout=120)
    assert done.status is ExecutionStatus.SUCCEEDED
    lineage = {(r.route, r.stage): r for r in components.executions.lineage(failed.id)}
    assert lineage["ingest", "fetch"].attempt == 1  # not run again
    assert lineage["ingest", "parse"].attempt == 1
    assert lineage["enrich", "annotate"].attempt == 2
    assert lineage["enrich", "index"].artefact_count == DOCS
    assert components.executions.counter(failed.id, "fetch") == DOCS
    [recovery] = components.executions.recoveries(failed.id)
    assert (recovery.state, recovery.reason) == ("PUBLISHED", "annotator fixed")


def test_refusals_publish_and_change_nothing(
    components: Components, news: ConfigSnapshot, monkeypatch
) -> None:
    ok = run_pipeline(news, **components.runtime(), timeout=120)
    with pytest.raises(NotFailedError, match="SUCCEEDED"):
        manager(components).recover(ok.id)
    with pytest.raises(UnknownExecutionError):
        manager(components).recover("no-such-execution")
    nothing = failed_at(components, news, "fetch", monkeypatch)
    with pytest.raises(NothingSucceededError, match="fetch the sources again"):
        manager(components).recover(nothing.id)
    lost = failed_at(components, news, "annotate", monkeypatch)
    parse_folder = Path(components.artefacts.location.removeprefix("folder ")) / (
        f"executions/{lost.id}/ingest/parse"
    )
    for path in sorted(parse_folder.iterdir())[:5]:
        path.unlink()
    with pytest.raises(IncompleteArtefactsError, match=rf"{DOCS} .* {DOCS - 5}"):
        manager(components).recover(lost.id)
    shutil.rmtree(parse_folder)
    with pytest.raises(Exception, match="no artefacts"):
        manager(components).recover(lost.id)
    assert sum(queue_depths(components, news).values()) == 0
    for execution in (nothing, lost):
        assert components.executions.recoveries(execution.id) == []
        assert components.executions.get_execution(execution.id).status is ExecutionStatus.FAILED


def test_already_recovering_is_refused(
    components: Components, news: ConfigSnapshot, monkeypatch
) -> None:
    failed = failed_at(components, news, "annotate", monkeypatch)
    manager(components).recover(failed.id)
    with pytest.raises(AlreadyRecoveringError, match="already being recovered"):
        manager(components).recover(failed.id)
    assert queue_depths(components, news)["news.enrich"] == 1


def test_two_concurrent_recoveries_publish_one_init_message(
    components: Components, news: ConfigSnapshot, monkeypatch, tmp_path: Path
) -> None:
    failed = failed_at(components, news, "annotate", monkeypatch)
    outcomes: list[str] = []
    barrier = threading.Barrier(2)

    def attempt() -> None:
        with connect(Settings.from_env({"FACTFLOW_HOME": str(tmp_path)})) as own:
            barrier.wait()
            try:
                manager(own).recover(failed.id)
                outcomes.append("recovered")
            except AlreadyRecoveringError:
                outcomes.append("already")

    threads = [threading.Thread(target=attempt) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["already", "recovered"]
    assert queue_depths(components, news)["news.enrich"] == 1
    assert len(components.executions.recoveries(failed.id)) == 1


def test_past_the_limit_the_execution_needs_a_person(
    components: Components, news: ConfigSnapshot, monkeypatch
) -> None:
    failed = failed_at(components, news, "annotate", monkeypatch)
    monkeypatch.setenv("FACTFLOW_FAIL_STAGES", "annotate")  # the fault is never cleared
    for _ in range(2):
        manager(components, max_attempts=2).recover(failed.id)
        again = run_until_finished(
            failed.id, news.config.queues(), **components.runtime(), timeout=120
        )
        assert again.status is ExecutionStatus.FAILED
    before = queue_depths(components, news)
    with pytest.raises(RecoveryLimitError, match="2 times"):
        manager(components, max_attempts=2).recover(failed.id)
    assert components.executions.get_execution(failed.id).status is ExecutionStatus.NEEDS_ATTENTION
    assert queue_depths(components, news) == before


def test_rerun_of_one_stage_and_what_follows(components: Components, news: ConfigSnapshot) -> None:
    record = run_pipeline(news, **components.runtime(), timeout=120)
    service = RerunService(
        artefacts=components.artefacts,
        executions=components.executions,
        publisher=components.publisher,
    )
    result = service.rerun(
        record.id, "annotate", reason="new model", requested_by="alice", dagster_run_id="run-1"
    )
    assert (result.route, result.queue, result.attempt) == ("enrich", "news.enrich", 2)
    assert result.stages == ["enrich/annotate", "enrich/index"]
    with pytest.raises(InvalidStateError, match="PENDING"):
        service.rerun(record.id, "annotate")  # not at rest while the rerun is pending
    done = run_until_finished(record.id, news.config.queues(), **components.runtime(), timeout=120)
    assert done.status is ExecutionStatus.SUCCEEDED
    annotate = components.executions.stage_lineage(record.id, "enrich", "annotate")
    assert annotate is not None
    assert (annotate.attempt, annotate.status, annotate.artefact_count) == (
        2,
        StageStatus.SUCCEEDED,
        DOCS,
    )
    note = (annotate.note or {})["rerun"]
    assert (note["reason"], note["requested_by"], note["dagster_run_id"]) == (
        "new model",
        "alice",
        "run-1",
    )
    assert components.executions.counter(record.id, "fetch") == DOCS


def test_rerun_only_this_stage_leaves_the_rest(
    components: Components, news: ConfigSnapshot
) -> None:
    record = run_pipeline(news, **components.runtime(), timeout=120)
    service = RerunService(
        artefacts=components.artefacts,
        executions=components.executions,
        publisher=components.publisher,
    )
    result = service.rerun(record.id, "annotate", only_this_stage=True)
    assert result.stages == ["enrich/annotate"]
    done = run_until_finished(record.id, news.config.queues(), **components.runtime(), timeout=120)
    assert done.status is ExecutionStatus.SUCCEEDED
    index = components.executions.stage_lineage(record.id, "enrich", "index")
    assert index is not None
    assert index.attempt == 1


def test_rerun_of_a_replay_child_reads_the_parents_stored_stage(
    components: Components, news: ConfigSnapshot
) -> None:
    parent = run_pipeline(news, **components.runtime(), timeout=120)
    replay = DetachedReplayService(
        artefacts=components.artefacts,
        executions=components.executions,
        publisher=components.publisher,
    )
    result = replay.run(
        ReplayRequest(source_execution_id=parent.id, from_stage="parse", to_route="enrich")
    )
    child = run_until_finished(
        result.child_execution_id, news.config.queues(), **components.runtime(), timeout=120
    )
    rerun = RerunService(
        artefacts=components.artefacts,
        executions=components.executions,
        publisher=components.publisher,
    ).rerun(child.id, "annotate")
    assert rerun.input is not None
    assert (rerun.input.execution_id, rerun.input.stage) == (parent.id, "parse")
    done = run_until_finished(child.id, news.config.queues(), **components.runtime(), timeout=120)
    assert done.status is ExecutionStatus.SUCCEEDED


def test_a_still_running_attempt_is_not_recovered_unless_forced(
    components: Components, news: ConfigSnapshot
) -> None:
    stages = [("ingest", "fetch"), ("ingest", "parse"), ("enrich", "annotate"), ("enrich", "index")]
    executions = components.executions
    executions.create_execution("exec-running", news)
    attempt = executions.begin_attempt("exec-running", stages)
    executions.set_inputs_expected("exec-running", "ingest", "fetch", attempt, 0)
    executions.mark_stage_running("exec-running", "ingest", "parse", attempt)
    executions.fail_stage("exec-running", "enrich", "annotate", attempt, "boom")
    with pytest.raises(NotSettledError, match=r"ingest/parse .* still running"):
        manager(components).recover("exec-running")
    assert executions.recoveries("exec-running") == []
    assert components.publisher.queues() == []  # type: ignore[attr-defined] - nothing sent
    # Forced, it restarts at parse (the first stage that did not succeed) from fetch's
    # stored artefacts, of which there are none here: refused for that reason instead.
    with pytest.raises(NoArtefactsError, match="fetch"):
        manager(components).recover("exec-running", force=True)
