"""Cross-pipeline (detached) replay: stored artefacts of one execution into another route."""

from __future__ import annotations

from .models import ReplayPlan, ReplayProgress, ReplayRequest, ReplayResult
from .planning import plan_replay, select_artefacts
from .service import DetachedReplayService

__all__ = [
    "DetachedReplayService",
    "ReplayPlan",
    "ReplayProgress",
    "ReplayRequest",
    "ReplayResult",
    "plan_replay",
    "select_artefacts",
]
