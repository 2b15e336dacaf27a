"""The reference runtime on embedded defaults: a full run, failures, de-duplication, a crash."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from support.crashes import kill_a_worker_mid_stage_then_restart
from support.worlds import NEWS_OBJECTS, NEWS_STAGES, stored_names

from factflow_replay_dagster.connect import Components, connect
from factflow_replay_dagster.executions import ExecutionStatus, StageStatus
from factflow_replay_dagster.layout import stage_prefix
from factflow_replay_dagster.messages import ArtefactHeaders, forward_message_id
from factflow_replay_dagster.pipelines import sample_config
from factflow_replay_dagster.queues.base import OutgoingMessage
from factflow_replay_dagster.queues.embedded import EmbeddedQueue
from factflow_replay_dagster.runtime import Worker, run_pipeline
from factflow_replay_dagster.settings import Settings
from factflow_replay_dagster.snapshot import ConfigSnapshot


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"FACTFLOW_HOME": str(tmp_path / "home"), "FACTFLOW_EMBEDDED_LEASE_SECONDS": "3"}


@pytest.fixture
def components(env: dict[str, str]) -> Components:
    with connect(Settings.from_env(env)) as opened:
        yield opened


@pytest.fixture
def news() -> ConfigSnapshot:
    return ConfigSnapshot.load(sample_config("news"))


def test_news_runs_end_to_end(components: Components, news: ConfigSnapshot) -> None:
    record = run_pipeline(news, **components.runtime(), timeout=120)
    assert record.status is ExecutionStatus.SUCCEEDED
    for route, stage in NEWS_STAGES:
        assert stored_names(components, record.id, route, stage) == NEWS_OBJECTS
    lineage = components.executions.lineage(record.id)
    assert [(row.route, row.stage, row.status, row.artefact_count) for row in lineage] == [
        (route, stage, StageStatus.SUCCEEDED, 240) for route, stage in NEWS_STAGES
    ]
    assert [row.inputs_processed for row in lineage] == [1, 240, 240, 240]
    assert components.executions.counter(record.id, "fetch") == 240
    assert components.executions.get_execution(record.id).snapshot == news.text


def test_a_failing_stage_fails_the_execution_and_keeps_what_succeeded(
    components: Components, news: ConfigSnapshot, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FACTFLOW_FAIL_STAGES", "enrich/annotate")
    record = run_pipeline(news, **components.runtime(), timeout=120)
    assert record.status is ExecutionStatus.FAILED
    assert "enrich/annotate" in (record.error or "")
    lineage = {(row.route, row.stage): row for row in components.executions.lineage(record.id)}
    assert lineage["ingest", "parse"].status is StageStatus.SUCCEEDED
    assert lineage["enrich", "annotate"].status is StageStatus.FAILED
    assert "InjectedFailureError" in (lineage["enrich", "annotate"].error or "")
    assert len(stored_names(components, record.id, "ingest", "parse")) == 240


def test_a_duplicate_message_is_processed_once(
    components: Components, news: ConfigSnapshot
) -> None:
    record = run_pipeline(news, **components.runtime(), timeout=120)
    # Send one of parse's artefacts to annotate again, with its original id and attempt.
    key = f"{stage_prefix(record.id, 'ingest', 'parse')}news-0001.json"
    message = parse_output_to_annotate(components, record.id, key)
    components.publisher.publish("news.enrich", [message])
    worker = Worker(["news.enrich"], **components.runtime())
    stop = threading.Event()
    with components.consumer() as consumer:
        for delivery in consumer.consume(["news.enrich"], stop=stop):
            assert delivery.message_id == message.message_id
            worker.handle(delivery)
            stop.set()
    annotate = components.executions.stage_lineage(record.id, "enrich", "annotate")
    assert annotate is not None
    assert (annotate.inputs_processed, annotate.artefact_count) == (240, 240)
    assert components.executions.get_execution(record.id).status is ExecutionStatus.SUCCEEDED


def test_a_worker_killed_mid_stage_loses_and_duplicates_nothing(
    tmp_path: Path, env: dict[str, str], components: Components
) -> None:
    kill_a_worker_mid_stage_then_restart(components, env, tmp_path, delay_ms=15, timeout=120)


def test_a_failed_stage_takes_no_more_inputs_in_any_worker(
    components: Components, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After annotate fails, a healthy worker must not run its remaining inputs of that attempt:
    they would start index, which could then never finish."""
    from support.worlds import small_news

    news = ConfigSnapshot.parse(small_news(40).text)
    monkeypatch.setenv("FACTFLOW_FAIL_STAGES", "annotate")
    record = run_pipeline(news, **components.runtime(), timeout=120)  # stops as soon as it FAILED
    assert record.status is ExecutionStatus.FAILED
    monkeypatch.delenv("FACTFLOW_FAIL_STAGES")
    # How many inputs the failed worker left queued depends on timing (it drops what it sees
    # before it stops), so the attempt's inputs of annotate are queued again, as a worker whose
    # forwards were still in flight would have left them.
    parsed = components.artefacts.list_keys(stage_prefix(record.id, "ingest", "parse"))
    left = [parse_output_to_annotate(components, record.id, key) for key in parsed]
    assert left
    components.publisher.publish("news.enrich", left)
    queue = components.publisher
    assert isinstance(queue, EmbeddedQueue)
    stop = threading.Event()
    healthy = threading.Thread(
        target=Worker(news.config.queues(), **components.runtime()).run, args=(stop,)
    )
    healthy.start()
    deadline = time.monotonic() + 60
    while any(queue.depth(q) for q in news.config.queues()) and time.monotonic() < deadline:
        time.sleep(0.1)
    stop.set()
    healthy.join()
    assert not any(queue.depth(q) for q in news.config.queues())  # the healthy worker took them
    lineage = {(r.route, r.stage): r for r in components.executions.lineage(record.id)}
    assert lineage["enrich", "annotate"].status is StageStatus.FAILED
    assert lineage["enrich", "annotate"].inputs_processed == 0
    assert lineage["enrich", "index"].status is StageStatus.PENDING


def parse_output_to_annotate(
    components: Components, execution_id: str, key: str
) -> OutgoingMessage:
    """The message parse sent annotate for its stored output ``key`` (attempt 1, original id)."""
    headers = ArtefactHeaders(
        execution_id=execution_id,
        attempt=1,
        route="enrich",
        stage="annotate",
        source_execution_id=execution_id,
        source_route="ingest",
        source_stage="parse",
        object_key=key,
        etag=components.artefacts.stat(key).etag,
    )
    return headers.message(
        components.artefacts.read(key), message_id=forward_message_id(execution_id, 1, key)
    )
