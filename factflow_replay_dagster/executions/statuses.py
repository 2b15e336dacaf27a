"""The lifecycles of executions, stages and replays: plain enums, importable without a database
or pydantic (the command line names them in its options)."""

from __future__ import annotations

__all__ = ["FINISHED_STATUSES", "ExecutionStatus", "ReplayState", "StageStatus"]

import enum


class ExecutionStatus(enum.StrEnum):
    """Lifecycle of an execution.

    PENDING → RUNNING → SUCCEEDED | FAILED | CANCELLED; FAILED → RECOVERING → RUNNING (a
    recovery published its init message); FAILED → NEEDS_ATTENTION (recovery limit reached).
    REGISTERED marks an execution recorded from another deployment's stored artefacts.
    """

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    RECOVERING = "RECOVERING"
    CANCELLED = "CANCELLED"
    NEEDS_ATTENTION = "NEEDS_ATTENTION"
    REGISTERED = "REGISTERED"


#: Statuses after which nothing happens without someone asking.
FINISHED_STATUSES = frozenset(
    {
        ExecutionStatus.SUCCEEDED,
        ExecutionStatus.FAILED,
        ExecutionStatus.CANCELLED,
        ExecutionStatus.NEEDS_ATTENTION,
        ExecutionStatus.REGISTERED,
    }
)


class StageStatus(enum.StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


class ReplayState(enum.StrEnum):
    PLANNED = "PLANNED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
