"""The news pipeline on RabbitMQ + SeaweedFS + PostgreSQL, including a worker killed mid-stage."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from factflow_replay_dagster.connect import Components
from factflow_replay_dagster.executions import ExecutionStatus, StageStatus
from factflow_replay_dagster.layout import stage_prefix
from factflow_replay_dagster.pipelines import sample_config
from factflow_replay_dagster.runtime import run_pipeline, start_execution
from factflow_replay_dagster.snapshot import ConfigSnapshot
from factflow_replay_dagster.storage.s3 import S3ArtefactStore
from factflow_replay_dagster.testing.workers import WorkerProcess

STAGES = [("ingest", "fetch"), ("ingest", "parse"), ("enrich", "annotate"), ("enrich", "index")]
EXPECTED = [f"news-{i:04d}.json" for i in range(1, 241)]


def names(components: Components, execution_id: str, route: str, stage: str) -> list[str]:
    prefix = stage_prefix(execution_id, route, stage)
    return [info.key[len(prefix) :] for info in components.artefacts.list(prefix)]


def test_news_runs_end_to_end_on_servers(components: Components) -> None:
    assert isinstance(components.artefacts, S3ArtefactStore)
    assert components.executions.dialect == "postgresql"
    record = run_pipeline(components, ConfigSnapshot.load(sample_config("news")), timeout=300)
    assert record.status is ExecutionStatus.SUCCEEDED
    for route, stage in STAGES:
        assert names(components, record.id, route, stage) == EXPECTED
    lineage = components.executions.lineage(record.id)
    assert [(r.status, r.artefact_count) for r in lineage] == [(StageStatus.SUCCEEDED, 240)] * 4
    assert components.executions.counter(record.id, "fetch") == 240


def test_a_worker_killed_mid_stage_on_rabbitmq_loses_and_duplicates_nothing(
    components: Components, servers: dict[str, str], tmp_path: Path
) -> None:
    slow = tmp_path / "slow.yaml"
    slow.write_text(
        sample_config("news")
        .read_text()
        .replace(
            "callable: factflow_replay_dagster.pipelines.news:annotate",
            "callable: factflow_replay_dagster.pipelines.news:annotate\n"
            "        options: {delay_ms: 20}",
        )
    )
    record = start_execution(components, ConfigSnapshot.load(slow))
    first = WorkerProcess([slow], env=servers, log_path=tmp_path / "worker1.log").start()
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        row = components.executions.stage_lineage(record.id, "enrich", "annotate")
        if row is not None and row.inputs_processed >= 60:
            break
        time.sleep(0.05)
    else:
        first.kill()
        pytest.fail(f"annotate never got going:\n{first.log_tail()}")
    first.kill()
    row = components.executions.stage_lineage(record.id, "enrich", "annotate")
    assert row is not None
    assert row.status is StageStatus.RUNNING
    second = WorkerProcess([slow], env=servers, log_path=tmp_path / "worker2.log").start()
    try:
        while time.monotonic() < deadline + 180:
            if components.executions.get_execution(record.id).status is ExecutionStatus.SUCCEEDED:
                break
            time.sleep(0.2)
        else:
            pytest.fail(f"no completion after the restart:\n{second.log_tail()}")
    finally:
        second.stop()
    for route, stage in STAGES:
        assert names(components, record.id, route, stage) == EXPECTED
    assert all(r.artefact_count == 240 for r in components.executions.lineage(record.id))
