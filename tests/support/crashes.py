"""A worker SIGKILLed in the middle of a stage, then restarted: the same proof on every backend."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from factflow_replay_dagster.connect import Components
from factflow_replay_dagster.executions import ExecutionStatus, StageStatus
from factflow_replay_dagster.runtime import start_execution
from factflow_replay_dagster.snapshot import ConfigSnapshot
from support.servers.workers import WorkerProcess

from .worlds import NEWS_OBJECTS, NEWS_STAGES, news_with, stored_names


def kill_a_worker_mid_stage_then_restart(
    components: Components,
    env: dict[str, str],
    tmp_path: Path,
    *,
    delay_ms: int,
    timeout: float,
) -> None:
    """Run ``news`` (``annotate`` slowed by ``delay_ms``) in a worker process, SIGKILL it once
    60 inputs of ``annotate`` are done, start another: the execution must complete with every
    stage's objects stored exactly once and lineage counting 240 each."""
    slow = tmp_path / "slow.yaml"
    slow.write_text(news_with("annotate", f"{{delay_ms: {delay_ms}}}"))
    record = start_execution(
        ConfigSnapshot.load(slow), executions=components.executions, publisher=components.publisher
    )
    first = WorkerProcess([slow], env=env, log_path=tmp_path / "worker1.log").start()
    deadline = time.monotonic() + timeout
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
    assert row.status is StageStatus.RUNNING  # really killed in the middle of the stage
    second = WorkerProcess([slow], env=env, log_path=tmp_path / "worker2.log").start()
    try:
        while time.monotonic() < deadline + timeout:
            if components.executions.get_execution(record.id).status is ExecutionStatus.SUCCEEDED:
                break
            time.sleep(0.1)
        else:
            pytest.fail(f"execution did not finish after the restart:\n{second.log_tail()}")
    finally:
        second.stop()
    for route, stage in NEWS_STAGES:
        assert stored_names(components, record.id, route, stage) == NEWS_OBJECTS
    for row in components.executions.lineage(record.id):
        assert row.status is StageStatus.SUCCEEDED
        assert row.artefact_count == 240
