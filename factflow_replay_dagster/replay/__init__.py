"""Cross-pipeline (detached) replay: stored artefacts of one execution into another route.

``replay.models`` (the request, plan, progress and result) imports little, so the command
line can build its options from the request without loading the service and its store.
"""

from __future__ import annotations

__all__ = [
    "RESUME_DESCRIPTION",
    "DetachedReplayService",
    "ReplayOptions",
    "ReplayPlan",
    "ReplayProgress",
    "ReplayRequest",
    "ReplayResult",
    "ReplayStatus",
    "ShardPlan",
    "ShardResult",
    "check_replay",
    "new_replay_id",
    "plan_replay",
    "replay_launch_tags",
    "resolve_target",
    "select_artefacts",
]

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from .launch import replay_launch_tags
    from .models import (
        RESUME_DESCRIPTION,
        ReplayOptions,
        ReplayPlan,
        ReplayProgress,
        ReplayRequest,
        ReplayResult,
        ReplayStatus,
        ShardPlan,
        ShardResult,
        new_replay_id,
    )
    from .planning import check_replay, plan_replay, resolve_target, select_artefacts
    from .service import DetachedReplayService

_HOMES = {
    "DetachedReplayService": "service",
    "check_replay": "planning",
    "plan_replay": "planning",
    "replay_launch_tags": "launch",
    "resolve_target": "planning",
    "select_artefacts": "planning",
    **dict.fromkeys(
        [
            "RESUME_DESCRIPTION",
            "ReplayOptions",
            "ReplayPlan",
            "ReplayProgress",
            "ReplayRequest",
            "ReplayResult",
            "ReplayStatus",
            "ShardPlan",
            "ShardResult",
            "new_replay_id",
        ],
        "models",
    ),
}


__getattr__ = lazy_exports(__name__, _HOMES)
