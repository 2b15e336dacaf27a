"""Dagster jobs: replay, same-pipeline rerun and recovery, each a thin shell over the core."""

from __future__ import annotations

from .recovery import RecoveryConfig, RerunConfig, recovery_job, rerun_stage_job
from .replay import ReplayConfig, replay_job

__all__ = [
    "RecoveryConfig",
    "ReplayConfig",
    "RerunConfig",
    "recovery_job",
    "replay_job",
    "rerun_stage_job",
]
