"""The discovery sensor's work follows what changed, not the history: 100 new executions cost
the same with 1,000 or 10,000 recorded before them (SQL statements and storage listings)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import event, insert
from support.snapshots import SNAPSHOT

from factflow_replay_dagster.assets import stage_asset_key
from factflow_replay_dagster.discovery import discover
from factflow_replay_dagster.executions import ExecutionStore
from factflow_replay_dagster.executions.models import Event, Execution
from factflow_replay_dagster.snapshot import ConfigSnapshot
from factflow_replay_dagster.storage.local import LocalArtefactStore

STAGES = [("ingest", "fetch"), ("ingest", "parse"), ("enrich", "annotate"), ("enrich", "index")]
REGISTERED = {stage_asset_key("demo", r, s) for r, s in STAGES}


class CountingStore(LocalArtefactStore):
    listings = 0

    def list(self, prefix, *, start_after=None):  # type: ignore[override]
        CountingStore.listings += 1
        return super().list(prefix, start_after=start_after)


def history(store: ExecutionStore, size: int) -> None:
    """``size`` old executions with their change-log entries, inserted in bulk."""
    now = datetime.now(UTC)
    rows = [
        {
            "id": f"old-{i:06d}",
            "pipeline": "demo",
            "pipeline_version": "1",
            "snapshot": SNAPSHOT,
            "status": "SUCCEEDED",
            "origin": "run",
            "attempt": 1,
            "failure_count": 0,
            "recovery_attempts": 0,
            "created_at": now,
            "updated_at": now,
        }
        for i in range(size)
    ]
    events = [
        {
            "execution_id": r["id"],
            "kind": "created",
            "status": "PENDING",
            "at": now,
            "data": {"pipeline": "demo"},
        }
        for r in rows
    ]
    with store._engine.begin() as conn:
        conn.execute(insert(Execution), rows)
        conn.execute(insert(Event), events)


def hundred_new(store: ExecutionStore) -> None:
    snapshot = ConfigSnapshot.parse(SNAPSHOT)
    for i in range(100):
        execution_id = f"new-{i:03d}"
        store.create_execution(execution_id, snapshot)
        attempt = store.begin_attempt(execution_id, STAGES)
        for route, stage in STAGES:
            store.set_inputs_expected(execution_id, route, stage, attempt, 0)


def measure(tmp_path: Path, size: int) -> tuple[int, int, int, int]:
    store = ExecutionStore(f"sqlite:///{tmp_path / f'history-{size}.db'}")
    history(store, size)
    cursor = str(store.last_event_seq())
    hundred_new(store)
    statements = 0

    def count(*_args: object) -> None:
        nonlocal statements
        statements += 1

    event.listen(store._engine, "before_cursor_execute", count)
    CountingStore.listings = 0
    found = discover(
        store,
        cursor,
        registered=REGISTERED,
        location="folder x",
        verify_with=CountingStore(tmp_path / "objects"),
    )
    event.remove(store._engine, "before_cursor_execute", count)
    partitions = sum(len(keys) for keys in found.partitions.values())
    store.close()
    return partitions, len(found.events), statements, CountingStore.listings


@pytest.mark.slow
def test_a_tick_finding_100_new_executions_costs_the_same_over_1000_or_10000(tmp_path) -> None:
    small = measure(tmp_path, 1_000)
    large = measure(tmp_path, 10_000)
    partitions, events, statements, listings = large
    assert partitions == 100
    assert events == 100 * 4 * 2  # a materialization and a check per stage
    assert listings == 100 * 4  # storage is listed for changed stages only
    assert large == small  # nothing grows with the history
    assert statements < 100 * 4 * 3  # a few per changed stage, none per old execution
