"""The discovery sensor's work follows what changed, not the history: 100 new executions cost
the same with 1,000 or 10,000 recorded before them (SQL statements and storage listings)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import event
from support.snapshots import SNAPSHOT
from support.worlds import NEWS_STAGES

from factflow_replay_dagster.defs.assets import stage_asset_key
from factflow_replay_dagster.defs.discovery import discover
from factflow_replay_dagster.executions import ExecutionStore
from factflow_replay_dagster.snapshot import ConfigSnapshot
from factflow_replay_dagster.storage.local import LocalArtefactStore
from factflow_replay_dagster.testing.history import bulk_history, finished_executions

REGISTERED = {stage_asset_key("demo", r, s) for r, s in NEWS_STAGES}


class CountingStore(LocalArtefactStore):
    listings = 0

    def list(self, prefix, *, start_after=None):  # type: ignore[override]
        CountingStore.listings += 1
        return super().list(prefix, start_after=start_after)


def measure(tmp_path: Path, size: int) -> tuple[int, int, int, int]:
    store = ExecutionStore(f"sqlite:///{tmp_path / f'history-{size}.db'}")
    snapshot = ConfigSnapshot.parse(SNAPSHOT)
    bulk_history(store, snapshot, size)
    cursor = str(store.last_event_seq())
    finished_executions(store, snapshot, 100)
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
