"""``/api/v1/executions``: list and show executions, replay one into a route, recover one."""

from __future__ import annotations

__all__ = ["router"]

from typing import Annotated

from fastapi import APIRouter, Body, Path, Query
from fastapi.responses import JSONResponse

from ...executions import ExecutionDetails, ExecutionStatus, ExecutionSummary, execution_details
from ...recovery import RecoveryOptions
from ...replay import ReplayOptions, ReplayPlan
from .. import actions
from ..errors import error_responses
from ..models import ReplayAccepted, RunAccepted
from ._deps import Context

router = APIRouter(prefix="/api/v1/executions", tags=["executions"])

ExecutionIdPath = Annotated[str, Path(description="The execution's id.", max_length=255)]


@router.get("", summary="Recorded executions, newest first", responses=error_responses(401, 503))
def list_executions(
    ctx: Context,
    status: Annotated[ExecutionStatus | None, Query(description="Only this status.")] = None,
    pipeline: Annotated[
        str | None, Query(description="Only this pipeline.", max_length=255)
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="At most this many.")] = 50,
) -> list[ExecutionSummary]:
    records = ctx.executions().list_executions(status=status, pipeline=pipeline, limit=limit)
    return [ExecutionSummary.model_validate(r.model_dump(exclude={"snapshot"})) for r in records]


@router.get(
    "/{execution_id}",
    summary="Status, routes, lineage, provenance both ways, children",
    responses=error_responses(400, 401, 404, 503),
)
def get_execution(ctx: Context, execution_id: ExecutionIdPath) -> ExecutionDetails:
    return execution_details(ctx.executions(), execution_id)


@router.post(
    "/{execution_id}/replay",
    summary="Replay the execution's stored artefacts of a stage into a route",
    description="Checks the request, then submits a `replay_job` run (202) that creates the "
    "child execution and publishes with confirms. With `dry_run: true`, nothing is "
    "submitted: 200 with the plan (artefacts, bytes, resolved queue, first and last key).",
    status_code=202,
    response_model=None,
    responses=error_responses(
        400,
        401,
        404,
        409,
        422,
        503,
        also={
            202: {"model": ReplayAccepted, "description": "The replay's run was submitted."},
            200: {"model": ReplayPlan, "description": "The dry run's plan; nothing submitted."},
        },
    ),
)
def replay_execution(
    ctx: Context, execution_id: ExecutionIdPath, options: ReplayOptions
) -> JSONResponse:
    result = actions.start_replay(ctx, execution_id, options)
    status = 200 if isinstance(result, ReplayPlan) else 202
    headers = {} if isinstance(result, ReplayPlan) else {"Location": result.status_url}
    return JSONResponse(result.model_dump(mode="json"), status_code=status, headers=headers)


@router.post(
    "/{execution_id}/recover",
    summary="Restart a failed execution from its last succeeded stage",
    description="Checks the execution can be recovered, then submits a `recovery_job` run.",
    status_code=202,
    responses=error_responses(400, 401, 404, 409, 422, 503),
)
def recover_execution(
    ctx: Context,
    execution_id: ExecutionIdPath,
    options: Annotated[RecoveryOptions | None, Body()] = None,
) -> RunAccepted:
    return actions.start_recovery(ctx, execution_id, options or RecoveryOptions())
