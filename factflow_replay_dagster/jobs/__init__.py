"""Dagster jobs: replay, same-pipeline rerun and recovery, each a thin shell over the core."""

from __future__ import annotations

from .recovery import RecoveryConfig, RerunConfig, recovery_job, rerun_stage_job
from .replay import ReplayConfig, replay_job
from .verify import VerifyConfig, verify_stored_job

__all__ = [
    "RecoveryConfig",
    "ReplayConfig",
    "RerunConfig",
    "VerifyConfig",
    "recovery_job",
    "replay_job",
    "rerun_stage_job",
    "verify_stored_job",
]
