"""The execution store on SQLite and PostgreSQL: records, lineage, replays, recoveries, events."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect

from factflow_replay_dagster.errors import (
    AlreadyRecoveringError,
    InvalidIdError,
    InvalidStateError,
    NotFailedError,
    RecoveryLimitError,
    UnknownExecutionError,
    UnknownReplayError,
)
from factflow_replay_dagster.executions import (
    ExecutionStatus,
    ExecutionStore,
    ReplaySource,
    ReplayState,
    ShardSpec,
    StageStatus,
)
from factflow_replay_dagster.snapshot import ConfigSnapshot

ALL_STAGES = [("ingest", "fetch"), ("ingest", "parse"), ("enrich", "annotate"), ("enrich", "index")]


def test_migrations_create_every_table_and_are_idempotent(store: ExecutionStore) -> None:
    store.migrate()  # a second time changes nothing
    tables = set(inspect(store._engine).get_table_names())
    assert {
        "alembic_version",
        "executions",
        "stage_lineage",
        "processed_messages",
        "replays",
        "recoveries",
        "execution_events",
        "counters",
    } <= tables


def test_migrations_downgrade_to_base_and_up_again(store: ExecutionStore) -> None:
    store.downgrade("base")
    assert set(inspect(store._engine).get_table_names()) <= {"alembic_version"}
    store.migrate()
    assert "executions" in inspect(store._engine).get_table_names()


def test_create_and_read_back_keeps_the_snapshot_verbatim(
    store: ExecutionStore, snapshot: ConfigSnapshot
) -> None:
    record = store.create_execution("exec-1", snapshot)
    assert record.status is ExecutionStatus.PENDING
    loaded = store.get_execution("exec-1")
    assert loaded.snapshot == snapshot.text
    assert loaded.pipeline == "demo"
    assert loaded.created_at.tzinfo is not None
    assert store.snapshot_of("exec-1").config == snapshot.config
    with pytest.raises(InvalidStateError, match="already exists"):
        store.create_execution("exec-1", snapshot)


@pytest.mark.parametrize("bad", ["../x", "a/b", "", "x" * 200, "a\x00b", ".hidden", "a|b"])
def test_bad_ids_are_rejected_before_any_query(
    store: ExecutionStore, snapshot: ConfigSnapshot, bad: str
) -> None:
    with pytest.raises(InvalidIdError):
        store.create_execution(bad, snapshot)
    with pytest.raises(InvalidIdError):
        store.get_execution(bad)


def test_unknown_execution_is_named(store: ExecutionStore) -> None:
    with pytest.raises(UnknownExecutionError, match="'nope'"):
        store.get_execution("nope")


def test_children_and_replay_source(store: ExecutionStore, snapshot: ConfigSnapshot) -> None:
    store.create_execution("parent", snapshot)
    source = ReplaySource(
        replay_id="r1",
        parent_execution_id="parent",
        source_route="ingest",
        from_stage="parse",
        to_route="enrich",
        queue="demo.enrich",
        total=3,
        reason="fix",
    )
    store.create_execution(
        "child", snapshot, parent_id="parent", replay_source=source, origin="replay"
    )
    [child] = store.children("parent")
    assert child.id == "child"
    assert child.replay_source == source
    with pytest.raises(UnknownExecutionError):
        store.create_execution("orphan", snapshot, parent_id="missing")


def test_conditional_status_changes(store: ExecutionStore, snapshot: ConfigSnapshot) -> None:
    store.create_execution("e", snapshot)
    assert store.set_status("e", ExecutionStatus.RUNNING)
    assert not store.set_status("e", ExecutionStatus.RUNNING)
    assert not store.set_status("e", ExecutionStatus.CANCELLED, only_from=[ExecutionStatus.PENDING])
    assert store.set_status("e", ExecutionStatus.FAILED, error="boom")
    record = store.get_execution("e")
    assert (record.status, record.error, record.failure_count) == ("FAILED", "boom", 1)
    assert record.finished_at is not None


def test_lineage_counts_once_per_message_and_completes(
    store: ExecutionStore, snapshot: ConfigSnapshot
) -> None:
    store.create_execution("e", snapshot)
    attempt = store.begin_attempt("e", ALL_STAGES)
    assert attempt == 1
    assert [(s.route, s.stage) for s in store.lineage("e")] == ALL_STAGES
    assert store.mark_stage_running("e", "ingest", "fetch", attempt)
    assert store.get_execution("e").status is ExecutionStatus.RUNNING
    first = store.record_processed("e", "ingest", "fetch", attempt, "m1", artefacts=2, size=10)
    duplicate = store.record_processed("e", "ingest", "fetch", attempt, "m1", artefacts=2, size=10)
    assert first.recorded
    assert not first.completed
    assert not duplicate.recorded
    done = store.set_inputs_expected("e", "ingest", "fetch", attempt, 1)
    assert done.completed
    assert not done.execution_succeeded
    fetch = store.stage_lineage("e", "ingest", "fetch")
    assert fetch is not None
    assert (fetch.status, fetch.artefact_count, fetch.bytes) == (StageStatus.SUCCEEDED, 2, 10)
    stale = store.record_processed("e", "ingest", "fetch", attempt - 1, "m2", artefacts=1, size=1)
    assert stale.stale
    for route, stage in ALL_STAGES[1:]:
        store.set_inputs_expected("e", route, stage, attempt, 1)
        outcome = store.record_processed("e", route, stage, attempt, "x", artefacts=1, size=1)
    assert outcome.execution_succeeded
    assert store.get_execution("e").status is ExecutionStatus.SUCCEEDED


def test_a_failed_stage_fails_the_execution_once(
    store: ExecutionStore, snapshot: ConfigSnapshot
) -> None:
    store.create_execution("e", snapshot)
    attempt = store.begin_attempt("e", ALL_STAGES)
    assert store.fail_stage("e", "enrich", "annotate", attempt, "ValueError: bad")
    assert store.fail_stage("e", "enrich", "annotate", attempt, "again")
    record = store.get_execution("e")
    assert record.status is ExecutionStatus.FAILED
    assert record.failure_count == 1
    assert "enrich/annotate" in (record.error or "")
    assert not store.fail_stage("e", "enrich", "annotate", attempt + 5, "stale")


def test_rerun_needs_an_allowed_status(store: ExecutionStore, snapshot: ConfigSnapshot) -> None:
    store.create_execution("e", snapshot)
    store.begin_attempt("e", ALL_STAGES)
    store.set_status("e", ExecutionStatus.RUNNING)
    with pytest.raises(InvalidStateError, match="RUNNING"):
        store.begin_attempt("e", ALL_STAGES[2:], only_from=[ExecutionStatus.SUCCEEDED])


def test_replay_progress_and_states(store: ExecutionStore, snapshot: ConfigSnapshot) -> None:
    store.create_execution("src", snapshot)
    store.create_replay(
        "rep-1",
        source_execution_id="src",
        source_route="ingest",
        from_stage="parse",
        to_route="enrich",
        queue="demo.enrich",
        request={"limit": None},
        total=10,
        bytes_total=100,
        first_key="k0",
        last_key="k9",
    )
    store.add_replay_shards(
        "rep-1", [ShardSpec(0, None, "k9", first_key="k0", total=10, bytes_total=100)]
    )
    store.save_shard_progress("rep-1", 0, confirmed=4, bytes_confirmed=40, last_confirmed_key="k3")
    record = store.set_replay_state("rep-1", ReplayState.CANCELLED, child_execution_id="child")
    assert (record.confirmed, record.last_confirmed_key, record.state) == (4, "k3", "CANCELLED")
    assert record.finished_at is not None
    assert [r.replay_id for r in store.list_replays(source_execution_id="src")] == ["rep-1"]
    with pytest.raises(UnknownReplayError):
        store.get_replay("rep-2")


def _failed(store: ExecutionStore, snapshot: ConfigSnapshot, execution_id: str = "e") -> int:
    store.create_execution(execution_id, snapshot)
    attempt = store.begin_attempt(execution_id, ALL_STAGES)
    store.fail_stage(execution_id, "enrich", "annotate", attempt, "boom")
    return attempt


def test_recovery_claim_is_exclusive_and_counted(
    store: ExecutionStore, snapshot: ConfigSnapshot
) -> None:
    attempt = _failed(store, snapshot)
    claim = store.claim_recovery(
        "e", restart_route="enrich", restart_stage="annotate", reset=ALL_STAGES[2:], max_attempts=3
    )
    assert (claim.number, claim.attempt) == (1, attempt + 1)
    assert store.get_execution("e").status is ExecutionStatus.RECOVERING
    with pytest.raises(AlreadyRecoveringError):
        store.claim_recovery(
            "e",
            restart_route="enrich",
            restart_stage="annotate",
            reset=ALL_STAGES[2:],
            max_attempts=3,
        )
    store.finish_recovery(claim)
    [recovery] = store.recoveries("e")
    assert (recovery.state, recovery.init_message_id) == ("PUBLISHED", claim.init_message_id)
    lineage = {(s.route, s.stage): s for s in store.lineage("e")}
    assert lineage["ingest", "fetch"].attempt == attempt  # upstream untouched
    assert lineage["enrich", "annotate"].attempt == claim.attempt
    assert lineage["enrich", "annotate"].status is StageStatus.PENDING


def test_recovery_refuses_a_running_execution(
    store: ExecutionStore, snapshot: ConfigSnapshot
) -> None:
    store.create_execution("e", snapshot)
    store.set_status("e", ExecutionStatus.RUNNING)
    with pytest.raises(NotFailedError, match="RUNNING"):
        store.claim_recovery(
            "e", restart_route="enrich", restart_stage="annotate", reset=[], max_attempts=3
        )


def test_a_failed_publish_lets_the_same_failure_be_recovered_again(
    store: ExecutionStore, snapshot: ConfigSnapshot
) -> None:
    _failed(store, snapshot)
    claim = store.claim_recovery(
        "e", restart_route="enrich", restart_stage="annotate", reset=ALL_STAGES[2:], max_attempts=3
    )
    store.finish_recovery(claim, error="broker down")
    assert store.get_execution("e").status is ExecutionStatus.FAILED
    again = store.claim_recovery(
        "e", restart_route="enrich", restart_stage="annotate", reset=ALL_STAGES[2:], max_attempts=3
    )
    assert again.number == 2


def test_recovery_limit_marks_needs_attention(
    store: ExecutionStore, snapshot: ConfigSnapshot
) -> None:
    _failed(store, snapshot)
    for _ in range(2):
        claim = store.claim_recovery(
            "e",
            restart_route="enrich",
            restart_stage="annotate",
            reset=ALL_STAGES[2:],
            max_attempts=2,
        )
        store.finish_recovery(claim)
        store.fail_stage("e", "enrich", "annotate", claim.attempt, "boom again")
    with pytest.raises(RecoveryLimitError, match="2 times"):
        store.claim_recovery(
            "e",
            restart_route="enrich",
            restart_stage="annotate",
            reset=ALL_STAGES[2:],
            max_attempts=2,
        )
    assert store.get_execution("e").status is ExecutionStatus.NEEDS_ATTENTION


def test_events_follow_changes_in_order(store: ExecutionStore, snapshot: ConfigSnapshot) -> None:
    start = store.last_event_seq()
    _failed(store, snapshot)
    events = store.events_since(start)
    assert [e.seq for e in events] == sorted(e.seq for e in events)
    statuses = [e.status for e in events if e.kind == "status"]
    assert statuses[-1] == "FAILED"
    failed = store.events_since(start, kinds=["status"])
    assert all(e.kind == "status" for e in failed)
    assert store.events_since(events[-1].seq) == []


def test_counters(store: ExecutionStore, snapshot: ConfigSnapshot) -> None:
    assert store.counter("e", "fetch") == 0
    assert store.increment_counter("e", "fetch") == 1
    assert store.increment_counter("e", "fetch", 4) == 5
    assert store.counter("e", "fetch") == 5


def test_repr_hides_the_password(tmp_path) -> None:
    store = ExecutionStore.__new__(ExecutionStore)
    from factflow_replay_dagster.settings import redact_url as redact_database_url

    url = "postgresql+psycopg://user:s3cr3t-pw@db:5432/x"
    assert "s3cr3t-pw" not in redact_database_url(url)
    store.url = redact_database_url(url)
    assert "s3cr3t-pw" not in repr(store)


def test_schema_head_constant_is_alembics_head(store: ExecutionStore) -> None:
    from alembic.script import ScriptDirectory

    from factflow_replay_dagster.executions.engine import (
        SCHEMA_HEAD,
        alembic_config,
        current_revision,
    )

    assert ScriptDirectory.from_config(alembic_config()).get_current_head() == SCHEMA_HEAD
    assert current_revision(store._engine) == SCHEMA_HEAD


def test_a_stage_keeps_the_first_and_last_key_it_stored(
    store: ExecutionStore, snapshot: ConfigSnapshot
) -> None:
    store.create_execution("e", snapshot)
    attempt = store.begin_attempt("e", ALL_STAGES)
    store.record_processed("e", "ingest", "parse", attempt, "m1", artefacts=1, size=1, keys=["k5"])
    store.record_processed(
        "e", "ingest", "parse", attempt, "m2", artefacts=2, size=1, keys=["k7", "k2"]
    )
    parse = store.stage_lineage("e", "ingest", "parse")
    assert parse is not None
    assert (parse.first_key, parse.last_key) == ("k2", "k7")
    [created] = store.events_since(0, kinds=["created"])
    assert created.data == {"pipeline": "demo", "origin": "run", "parent": None}


def test_a_recovery_that_could_not_publish_is_not_counted_as_an_attempt(
    store: ExecutionStore, snapshot: ConfigSnapshot
) -> None:
    _failed(store, snapshot)
    for _ in range(3):  # the broker is down three times in a row
        claim = store.claim_recovery(
            "e",
            restart_route="enrich",
            restart_stage="annotate",
            reset=ALL_STAGES[2:],
            max_attempts=1,
        )
        store.finish_recovery(claim, error="broker down")
    assert store.get_execution("e").recovery_attempts == 0
    final = store.claim_recovery(
        "e", restart_route="enrich", restart_stage="annotate", reset=ALL_STAGES[2:], max_attempts=1
    )
    assert final.number == 4  # row numbers are never reused
    assert [r.state for r in store.recoveries("e")] == ["FAILED", "FAILED", "FAILED", "CLAIMED"]
