"""Dagster jobs: replay, same-pipeline rerun, recovery and verification, thin shells over the core.

Each is built by a ``make_..._job`` factory (the command line builds them with its console
level); the module-level ``..._job`` objects are the defaults every code location uses.
"""

from __future__ import annotations

from .recovery import (
    RecoveryConfig,
    RerunConfig,
    make_recovery_job,
    make_rerun_stage_job,
    recovery_job,
    rerun_stage_job,
)
from .replay import ReplayConfig, make_replay_job, replay_job
from .verify import VerifyConfig, make_verify_stored_job, verify_stored_job

__all__ = [
    "RecoveryConfig",
    "ReplayConfig",
    "RerunConfig",
    "VerifyConfig",
    "make_recovery_job",
    "make_replay_job",
    "make_rerun_stage_job",
    "make_verify_stored_job",
    "recovery_job",
    "replay_job",
    "rerun_stage_job",
    "verify_stored_job",
]
