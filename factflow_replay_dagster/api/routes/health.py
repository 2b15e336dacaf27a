"""``/healthz`` (the process answers; no token needed) and ``/readyz`` (its dependencies do)."""

from __future__ import annotations

__all__ = ["router"]

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from .. import actions
from ..errors import error_responses
from ..models import Health, Readiness
from ._deps import Context

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process answers (no token needed)")
def healthz() -> Health:
    return Health()


@router.get(
    "/readyz",
    summary="The database, broker, storage and Dagster answer",
    response_model=Readiness,
    responses=error_responses(
        401, also={503: {"model": Readiness, "description": "Something is down: see `down`."}}
    ),
)
def readyz(ctx: Context) -> JSONResponse:
    ready = actions.readiness(ctx)
    return JSONResponse(ready.model_dump(), status_code=200 if ready.status == "ready" else 503)
