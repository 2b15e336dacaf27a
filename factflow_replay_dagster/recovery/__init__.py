"""Same-pipeline reruns and recovery of failed executions from their stored artefacts."""

from __future__ import annotations

from .launch import recovery_launch_tags
from .manager import RecoveryManager
from .models import RecoveryOptions, RecoveryResult, RerunRequest, RerunResult
from .rerun import RerunService
from .restart import check_input_stored, check_settled, restart_point, stage_input

__all__ = [
    "RecoveryManager",
    "RecoveryOptions",
    "RecoveryResult",
    "RerunRequest",
    "RerunResult",
    "RerunService",
    "check_input_stored",
    "check_settled",
    "recovery_launch_tags",
    "restart_point",
    "stage_input",
]
