"""The execution store and its records.

``executions.records`` (the typed records and statuses) imports no database code, so the
command line can name statuses without loading SQLAlchemy.
"""

from __future__ import annotations

__all__ = [
    "ExecutionDetails",
    "ExecutionEvent",
    "ExecutionRecord",
    "ExecutionStatus",
    "ExecutionStore",
    "ExecutionSummary",
    "ProcessedOutcome",
    "RecoveryClaim",
    "RecoveryRecord",
    "ReplayRecord",
    "ReplaySource",
    "ReplayState",
    "ReplaySummary",
    "ShardRecord",
    "ShardSpec",
    "StageLineage",
    "StageStatus",
    "execution_details",
]

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from ._lineage import ProcessedOutcome
    from ._recoveries import RecoveryClaim
    from ._shards import ShardSpec
    from .details import ExecutionDetails, execution_details
    from .records import (
        ExecutionEvent,
        ExecutionRecord,
        ExecutionSummary,
        RecoveryRecord,
        ReplayRecord,
        ReplaySource,
        ReplaySummary,
        ShardRecord,
        StageLineage,
    )
    from .statuses import ExecutionStatus, ReplayState, StageStatus
    from .store import ExecutionStore

_HOMES = {
    "ExecutionStore": "store",
    "ProcessedOutcome": "_lineage",
    "RecoveryClaim": "_recoveries",
    "ShardSpec": "_shards",
    **dict.fromkeys(["ExecutionDetails", "execution_details"], "details"),
    **dict.fromkeys(["ExecutionStatus", "ReplayState", "StageStatus"], "statuses"),
    **dict.fromkeys(
        [
            "ExecutionEvent",
            "ExecutionRecord",
            "ExecutionSummary",
            "RecoveryRecord",
            "ReplayRecord",
            "ReplaySource",
            "ReplaySummary",
            "ShardRecord",
            "StageLineage",
        ],
        "records",
    ),
}


__getattr__ = lazy_exports(__name__, _HOMES)
