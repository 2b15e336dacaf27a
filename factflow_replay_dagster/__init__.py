"""Replay stored factflow artefacts into queues and recover failed executions, from Dagster.

The package root exposes the plain core (no Dagster import). The Dagster layer lives in
``factflow_replay_dagster.definitions``, ``.resources``, ``.jobs``, ``.sensors``, ``.assets``.
"""

from __future__ import annotations

from .connect import Components, connect
from .errors import FactflowReplayError
from .executions import ExecutionStatus, ExecutionStore, ReplaySource
from .ids import validate_id
from .replay import DetachedReplayService, ReplayPlan, ReplayRequest, ReplayResult
from .settings import Settings
from .snapshot import ConfigSnapshot, PipelineConfig

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
