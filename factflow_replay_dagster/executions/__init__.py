"""The execution store and its records."""

from __future__ import annotations

from ._lineage import ProcessedOutcome
from ._recoveries import RecoveryClaim
from .records import (
    ExecutionEvent,
    ExecutionRecord,
    ExecutionStatus,
    RecoveryRecord,
    ReplayRecord,
    ReplaySource,
    ReplayState,
    StageLineage,
    StageStatus,
)
from .store import ExecutionStore

__all__ = [
    "ExecutionEvent",
    "ExecutionRecord",
    "ExecutionStatus",
    "ExecutionStore",
    "ProcessedOutcome",
    "RecoveryClaim",
    "RecoveryRecord",
    "ReplayRecord",
    "ReplaySource",
    "ReplayState",
    "StageLineage",
    "StageStatus",
]
