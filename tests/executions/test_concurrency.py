"""Concurrent writers in separate processes neither lose nor corrupt rows (SQLite, PostgreSQL)."""

from __future__ import annotations

import multiprocessing
from multiprocessing.synchronize import Barrier

from support.snapshots import SNAPSHOT
from support.worlds import NEWS_STAGES

from factflow_replay_dagster.errors import AlreadyRecoveringError
from factflow_replay_dagster.executions import ExecutionStatus, ExecutionStore
from factflow_replay_dagster.snapshot import ConfigSnapshot


def _writer(
    url: str, worker: int, count: int, barrier: multiprocessing.synchronize.Barrier
) -> None:
    snapshot = ConfigSnapshot.parse(SNAPSHOT)
    with ExecutionStore(url) as store:
        barrier.wait()
        for i in range(count):
            store.create_execution(f"w{worker}-{i}", snapshot)
            store.record_processed(
                "shared", "ingest", "parse", 1, f"w{worker}-m{i}", artefacts=1, size=3
            )
            store.increment_counter("shared", "hits")


def _recover(url: str, barrier: Barrier, results: list[str]) -> None:
    with ExecutionStore(url) as store:
        barrier.wait()
        try:
            claim = store.claim_recovery(
                "failed",
                restart_route="enrich",
                restart_stage="annotate",
                reset=NEWS_STAGES[2:],
                max_attempts=3,
            )
        except AlreadyRecoveringError:
            results.append("already")
        else:
            results.append(f"claimed:{claim.number}")


def _spawn() -> multiprocessing.context.SpawnContext:
    return multiprocessing.get_context("spawn")


def test_two_processes_writing_at_once_lose_nothing(store: ExecutionStore, store_url: str) -> None:
    snapshot = ConfigSnapshot.parse(SNAPSHOT)
    store.create_execution("shared", snapshot)
    store.begin_attempt("shared", NEWS_STAGES)
    ctx = _spawn()
    barrier = ctx.Barrier(2)
    count = 150
    workers = [ctx.Process(target=_writer, args=(store_url, w, count, barrier)) for w in range(2)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(timeout=240)
        assert process.exitcode == 0
    assert len(store.list_executions(limit=1000)) == 2 * count + 1
    parse = store.stage_lineage("shared", "ingest", "parse")
    assert parse is not None
    assert (parse.inputs_processed, parse.artefact_count, parse.bytes) == (300, 300, 900)
    assert store.counter("shared", "hits") == 2 * count
    seqs = [event.seq for event in store.events_since(0, limit=10_000)]
    assert seqs == sorted(set(seqs))


def test_concurrent_recoveries_in_four_processes_claim_once(
    store: ExecutionStore, store_url: str
) -> None:
    store.create_execution("failed", ConfigSnapshot.parse(SNAPSHOT))
    attempt = store.begin_attempt("failed", NEWS_STAGES)
    store.fail_stage("failed", "enrich", "annotate", attempt, "boom")
    ctx = _spawn()
    barrier = ctx.Barrier(4)
    with ctx.Manager() as manager:
        results = manager.list()
        workers = [
            ctx.Process(target=_recover, args=(store_url, barrier, results)) for _ in range(4)
        ]
        for process in workers:
            process.start()
        for process in workers:
            process.join(timeout=120)
            assert process.exitcode == 0
        outcome = sorted(results)
    assert outcome == ["already", "already", "already", "claimed:1"]
    assert store.get_execution("failed").status is ExecutionStatus.RECOVERING
    assert len(store.recoveries("failed")) == 1
