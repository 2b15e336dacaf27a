"""Replay stored factflow artefacts into queues and recover failed executions, from Dagster.

The package root exposes the plain core, imported on first use (so ``import
factflow_replay_dagster`` stays cheap for the command line). The Dagster layer lives in
:mod:`factflow_replay_dagster.defs`, the command line in :mod:`factflow_replay_dagster.cli`.
"""

from __future__ import annotations

__all__ = [
    "Components",
    "ConfigSnapshot",
    "DetachedReplayService",
    "ExecutionStatus",
    "ExecutionStore",
    "FactflowReplayError",
    "PipelineConfig",
    "ReplayPlan",
    "ReplayRequest",
    "ReplayResult",
    "ReplaySource",
    "Settings",
    "connect",
    "validate_id",
]

from typing import TYPE_CHECKING

from ._lazy import lazy_exports

if TYPE_CHECKING:
    from .connect import Components, connect
    from .errors import FactflowReplayError
    from .executions import ExecutionStatus, ExecutionStore, ReplaySource
    from .ids import validate_id
    from .replay import DetachedReplayService, ReplayPlan, ReplayRequest, ReplayResult
    from .settings import Settings
    from .snapshot import ConfigSnapshot, PipelineConfig

#: Where each exported name is defined.
_HOMES = {
    "Components": "connect",
    "connect": "connect",
    "FactflowReplayError": "errors",
    "ExecutionStatus": "executions",
    "ExecutionStore": "executions",
    "ReplaySource": "executions",
    "validate_id": "ids",
    "DetachedReplayService": "replay",
    "ReplayPlan": "replay",
    "ReplayRequest": "replay",
    "ReplayResult": "replay",
    "Settings": "settings",
    "ConfigSnapshot": "snapshot",
    "PipelineConfig": "snapshot",
}


__getattr__ = lazy_exports(__name__, _HOMES)
