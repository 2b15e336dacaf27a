"""A replay's records: the replay, its shards and its child execution, created or reopened.

The child execution records its provenance (``ReplaySource``): the parent, stage and route it
was fed from, the reason and the Dagster run; a resume reopens it with its error cleared.
"""

from __future__ import annotations

__all__ = ["create_replay", "reopen_replay"]

from datetime import UTC, datetime

from ..executions import ExecutionStatus, ExecutionStore, ReplayRecord, ReplaySource, ShardSpec
from ..snapshot import ConfigSnapshot
from .models import ReplayPlan, ReplayRequest, new_child_execution_id, new_replay_id


def create_replay(
    executions: ExecutionStore, request: ReplayRequest, plan: ReplayPlan, snapshot: ConfigSnapshot
) -> ReplayRecord:
    """Record a new replay, its child execution (with its provenance, PENDING, its stages
    reset for attempt 1) and its shards; nothing is published."""
    replay_id = request.replay_id or new_replay_id()
    child_id = request.child_execution_id or new_child_execution_id(plan.pipeline)
    source = ReplaySource(
        replay_id=replay_id,
        parent_execution_id=plan.source_execution_id,
        source_route=plan.source_route,
        from_stage=plan.from_stage,
        to_route=plan.to_route,
        queue=plan.queue,
        total=plan.count,
        match=plan.match,
        limit=plan.limit,
        reason=request.reason,
        dagster_run_id=request.dagster_run_id,
        started_at=datetime.now(UTC),
    )
    record = executions.create_replay(
        replay_id,
        source_execution_id=plan.source_execution_id,
        source_route=plan.source_route,
        from_stage=plan.from_stage,
        to_route=plan.to_route,
        queue=plan.queue,
        request=request.model_dump(mode="json"),
        total=plan.count,
        bytes_total=plan.bytes,
        first_key=plan.first_key,
        last_key=plan.last_key,
        child_execution_id=child_id,
        dagster_run_id=request.dagster_run_id,
    )
    executions.create_execution(
        child_id,
        snapshot,
        origin="replay",
        parent_id=plan.source_execution_id,
        replay_source=source,
    )
    stages = snapshot.config.downstream(plan.to_route, plan.target_stage)
    executions.begin_attempt(child_id, stages, note={"replay": replay_id})
    executions.add_replay_shards(
        replay_id,
        [
            ShardSpec(
                shard=shard.index,
                start_after=shard.start_after,
                stop_at=shard.stop_at,
                first_key=shard.first_key,
                total=shard.count,
                bytes_total=shard.bytes,
            )
            for shard in plan.shards
        ],
    )
    return record


def reopen_replay(executions: ExecutionStore, record: ReplayRecord) -> ReplayRecord:
    """The child goes back to PENDING, its cancel or failure message gone with it."""
    if record.child_execution_id is not None:
        executions.set_status(
            record.child_execution_id,
            ExecutionStatus.PENDING,
            only_from=[ExecutionStatus.CANCELLED, ExecutionStatus.FAILED],
            clear_error=True,
        )
    return record
