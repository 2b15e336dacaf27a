"""The tags a replay run must carry when it is submitted, for a queued run coordinator.

Dagster's queued run coordinator applies its tag concurrency limits to the tags a run has
when it enters the queue. ``replay_job`` tags its run with the source execution and the
route from inside its ops, too late for that; so whoever submits a replay (the CLI, the HTTP
API) resolves them first, from the execution store, with :func:`replay_launch_tags`.
"""

from __future__ import annotations

__all__ = ["replay_launch_tags"]

from .. import run_tags
from ..executions import ExecutionStore
from .models import ReplayRequest
from .planning import resolve_target


def replay_launch_tags(executions: ExecutionStore, request: ReplayRequest) -> dict[str, str]:
    """``factflow/kind``, ``factflow/source_execution``, ``factflow/queue``,
    ``factflow/to_route``, ``factflow/from_stage`` (and ``factflow/replay_id`` when the
    request names its replay) for a ``replay_job`` run of ``request``.

    The queue comes from the parent's own config snapshot, as the replay's plan resolves it,
    so the tag names the queue the run will publish into. Reads the store only: nothing is
    checked on the broker or in storage (the run's plan does that). An unknown execution or
    route raises the package's typed error (exit code 2): such a run would be refused anyway,
    so it is refused before it is queued.
    """
    parent, _, target = resolve_target(executions, request.source_execution_id, request.to_route)
    tags = {
        run_tags.KIND: "replay",
        run_tags.SOURCE_EXECUTION: parent.id,
        run_tags.QUEUE: target.queue,
        run_tags.TO_ROUTE: target.name,
        run_tags.FROM_STAGE: request.from_stage,
    }
    if request.replay_id is not None:
        tags[run_tags.REPLAY_ID] = request.replay_id
    return tags
