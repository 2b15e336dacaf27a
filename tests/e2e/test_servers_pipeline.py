"""The news pipeline on RabbitMQ + SeaweedFS + PostgreSQL, including a worker killed mid-stage."""

from __future__ import annotations

from pathlib import Path

from support.crashes import kill_a_worker_mid_stage_then_restart
from support.worlds import NEWS_OBJECTS, NEWS_STAGES, stored_names

from factflow_replay_dagster.connect import Components
from factflow_replay_dagster.executions import ExecutionStatus, StageStatus
from factflow_replay_dagster.pipelines import sample_config
from factflow_replay_dagster.runtime import run_pipeline
from factflow_replay_dagster.snapshot import ConfigSnapshot
from factflow_replay_dagster.storage.s3 import S3ArtefactStore


def test_news_runs_end_to_end_on_servers(components: Components) -> None:
    assert isinstance(components.artefacts, S3ArtefactStore)
    assert components.executions.dialect == "postgresql"
    record = run_pipeline(
        ConfigSnapshot.load(sample_config("news")), **components.runtime(), timeout=300
    )
    assert record.status is ExecutionStatus.SUCCEEDED
    for route, stage in NEWS_STAGES:
        assert stored_names(components, record.id, route, stage) == NEWS_OBJECTS
    lineage = components.executions.lineage(record.id)
    assert [(r.status, r.artefact_count) for r in lineage] == [(StageStatus.SUCCEEDED, 240)] * 4
    assert components.executions.counter(record.id, "fetch") == 240


def test_a_worker_killed_mid_stage_on_rabbitmq_loses_and_duplicates_nothing(
    components: Components, servers: dict[str, str], tmp_path: Path
) -> None:
    kill_a_worker_mid_stage_then_restart(components, servers, tmp_path, delay_ms=20, timeout=180)
