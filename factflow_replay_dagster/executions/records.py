"""Typed, read-only views of what the execution store holds (returned by every store method)."""

from __future__ import annotations

__all__ = [
    "ExecutionEvent",
    "ExecutionRecord",
    "ExecutionStatus",
    "ExecutionSummary",
    "RecoveryRecord",
    "ReplayRecord",
    "ReplaySource",
    "ReplayState",
    "ReplaySummary",
    "ShardRecord",
    "StageLineage",
    "StageStatus",
]

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from .statuses import ExecutionStatus, ReplayState, StageStatus


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, from_attributes=True)


class ReplaySource(_Record):
    """Provenance of a child execution created by a cross-pipeline replay."""

    replay_id: str
    parent_execution_id: str
    source_route: str
    from_stage: str
    to_route: str
    queue: str
    total: int = 0
    confirmed: int = 0
    bytes: int = 0
    match: str | None = None
    limit: int | None = None
    reason: str | None = None
    dagster_run_id: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None


class ExecutionSummary(_Record):
    """An execution without its config snapshot: what lists and the HTTP API show."""

    id: str
    pipeline: str
    pipeline_version: str
    status: ExecutionStatus
    origin: str
    parent_id: str | None
    replay_source: ReplaySource | None
    attempt: int
    failure_count: int
    recovery_attempts: int
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None


class ExecutionRecord(ExecutionSummary):
    """An execution with the config snapshot it was recorded with (verbatim)."""

    snapshot: str = Field(repr=False)


class StageLineage(_Record):
    execution_id: str
    route: str
    stage: str
    position: int
    status: StageStatus
    attempt: int
    inputs_expected: int | None
    inputs_processed: int
    artefact_count: int
    bytes: int
    end_sent: bool
    first_key: str | None = None
    last_key: str | None = None
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None
    note: dict[str, Any] | None
    manifest: bool = False


class ReplaySummary(_Record):
    """A replay without its stored request."""

    replay_id: str
    source_execution_id: str
    child_execution_id: str | None
    source_route: str
    from_stage: str
    to_route: str
    queue: str
    state: ReplayState
    total: int
    bytes_total: int
    confirmed: int
    bytes_confirmed: int
    first_key: str | None
    last_key: str | None
    last_confirmed_key: str | None
    dagster_run_id: str | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    error: str | None
    heartbeat_at: datetime | None = None
    owner: str | None = None


class ReplayRecord(ReplaySummary):
    """A replay with the request it was made with (a resume repeats it)."""

    request: dict[str, Any]


class ShardRecord(_Record):
    """One key range of a replay and where its publishing stands."""

    replay_id: str
    shard: int
    start_after: str | None
    stop_at: str
    first_key: str
    total: int
    bytes_total: int
    confirmed: int
    bytes_confirmed: int
    last_confirmed_key: str | None
    state: ReplayState
    updated_at: datetime
    error: str | None

    @property
    def done(self) -> bool:
        return self.state is ReplayState.SUCCEEDED


class RecoveryRecord(_Record):
    execution_id: str
    attempt: int
    failure_count: int
    restart_route: str
    restart_stage: str
    init_message_id: str
    state: str
    reason: str | None
    requested_by: str | None
    dagster_run_id: str | None
    created_at: datetime
    error: str | None


class ExecutionEvent(_Record):
    """One entry of the store's change log, read by sensors with a cursor (``seq``)."""

    seq: int
    execution_id: str
    kind: str
    status: str | None
    route: str | None
    stage: str | None
    at: datetime
    data: dict[str, Any] | None
