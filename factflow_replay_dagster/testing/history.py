"""Large execution histories for scale tests and benchmarks, inserted in bulk."""

from __future__ import annotations

__all__ = ["bulk_history", "finished_executions"]

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import insert

from ..executions import ExecutionStore
from ..executions.models import Event, Execution
from ..snapshot import ConfigSnapshot


def bulk_history(
    store: ExecutionStore, snapshot: ConfigSnapshot, count: int, *, prefix: str = "old"
) -> None:
    """``count`` SUCCEEDED executions of ``snapshot`` and their ``created`` change-log entries,
    inserted 10,000 rows at a time (seconds for 100,000, where the public API takes minutes)."""
    now = datetime.now(UTC)
    pipeline = snapshot.config.pipeline
    for start in range(0, count, 10_000):
        ids = [f"{prefix}-{i:07d}" for i in range(start, min(start + 10_000, count))]
        rows = [
            {
                "id": i,
                "pipeline": pipeline,
                "pipeline_version": snapshot.config.version,
                "snapshot": snapshot.text,
                "status": "SUCCEEDED",
                "origin": "run",
                "attempt": 1,
                "failure_count": 0,
                "recovery_attempts": 0,
                "created_at": now,
                "updated_at": now,
            }
            for i in ids
        ]
        events = [
            {
                "execution_id": i,
                "kind": "created",
                "status": "PENDING",
                "at": now,
                "data": {"pipeline": pipeline},
            }
            for i in ids
        ]
        with store._engine.begin() as conn:
            conn.execute(insert(Execution), rows)
            conn.execute(insert(Event), events)


def finished_executions(
    store: ExecutionStore, snapshot: ConfigSnapshot, count: int, *, prefix: str = "new"
) -> list[str]:
    """``count`` executions created through the public API whose every stage finished (with
    no inputs): each leaves the change-log entries a real run would."""
    stages: Sequence[tuple[str, str]] = [(r.name, s.name) for r, s in snapshot.config.iter_stages()]
    ids = []
    for n in range(count):
        execution_id = f"{prefix}-{n:04d}"
        store.create_execution(execution_id, snapshot)
        attempt = store.begin_attempt(execution_id, stages)
        for route, stage in stages:
            store.set_inputs_expected(execution_id, route, stage, attempt, 0)
        ids.append(execution_id)
    return ids
