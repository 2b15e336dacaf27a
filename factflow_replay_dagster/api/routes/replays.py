"""``/api/v1/replay`` (same-pipeline rerun) and ``/api/v1/replays/{id}``: follow, cancel and
resume a replay."""

from __future__ import annotations

__all__ = ["router"]

from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import StreamingResponse

from ...recovery import RerunRequest
from ...replay import ReplayStatus
from .. import actions
from ..errors import error_responses
from ..events import replay_events
from ..models import CancelAccepted, ReplayAccepted, RunAccepted
from ._deps import Context

router = APIRouter(prefix="/api/v1", tags=["replays"])

ReplayIdPath = Annotated[str, Path(description="The replay's id.", max_length=255)]


@router.post(
    "/replay",
    summary="Rerun a stage of an execution (and what follows) inside it",
    description="Same-pipeline rerun from the stage's stored input: checks the request, then "
    "submits a `rerun_stage_job` run.",
    status_code=202,
    responses=error_responses(400, 401, 404, 409, 422, 503),
)
def rerun_stage(ctx: Context, request: RerunRequest) -> RunAccepted:
    return actions.start_rerun(ctx, request)


@router.get(
    "/replays/{replay_id}",
    summary="A replay's state, confirmed/total, rate and last confirmed key",
    responses=error_responses(400, 401, 404, 503),
)
def get_replay(ctx: Context, replay_id: ReplayIdPath) -> ReplayStatus:
    return actions.replay_status(ctx, replay_id)


@router.get(
    "/replays/{replay_id}/events",
    summary="A replay's progress as server-sent events, until it ends",
    description="`progress` events (a ReplayStatus as JSON) whenever it changed, then one "
    "`end` event; `error` if the execution store failed meanwhile.",
    response_class=StreamingResponse,
    responses=error_responses(
        400,
        401,
        404,
        503,
        also={200: {"content": {"text/event-stream": {"schema": {"type": "string"}}}}},
    ),
)
def replay_events_stream(ctx: Context, replay_id: ReplayIdPath) -> StreamingResponse:
    first = actions.replay_status(ctx, replay_id)
    return StreamingResponse(
        replay_events(ctx, replay_id, first),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.post(
    "/replays/{replay_id}/cancel",
    summary="Terminate the replay's Dagster run; it saves its position",
    status_code=202,
    responses=error_responses(400, 401, 404, 409, 503),
)
def cancel_replay(ctx: Context, replay_id: ReplayIdPath) -> CancelAccepted:
    return actions.cancel_replay(ctx, replay_id)


@router.post(
    "/replays/{replay_id}/resume",
    summary="Continue a cancelled or failed replay after its last confirmed artefact",
    status_code=202,
    responses=error_responses(400, 401, 404, 409, 503),
)
def resume_replay(ctx: Context, replay_id: ReplayIdPath) -> ReplayAccepted:
    return actions.resume_replay(ctx, replay_id)
