"""Typed requests, plans, progress and results of a cross-pipeline (detached) replay."""

from __future__ import annotations

__all__ = ["ReplayPlan", "ReplayProgress", "ReplayRequest", "ReplayResult"]

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from .._validation import validated
from ..ids import validate_id

ExecutionId = Annotated[str, AfterValidator(lambda v: validate_id(v, kind="execution"))]
RouteId = Annotated[str, AfterValidator(lambda v: validate_id(v, kind="route"))]
StageId = Annotated[str, AfterValidator(lambda v: validate_id(v, kind="stage"))]
ReplayId = Annotated[str, AfterValidator(lambda v: validate_id(v, kind="replay"))]


class ReplayRequest(BaseModel):
    """What to replay: a parent execution's stored ``from_stage`` artefacts into ``to_route``.

    Build it from untrusted input with :meth:`parse`: bad ids raise
    :class:`~factflow_replay_dagster.errors.InvalidIdError`, other problems
    :class:`~factflow_replay_dagster.errors.InvalidInputError`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    source_execution_id: ExecutionId = Field(description="The parent execution to read from.")
    from_stage: StageId = Field(description="The stage whose stored artefacts are replayed.")
    to_route: RouteId = Field(description="The route (of the parent's snapshot) to feed.")
    source_route: RouteId | None = Field(
        default=None, description="The route holding from_stage; needed only if ambiguous."
    )
    match: str | None = Field(
        default=None, max_length=256, description="Glob on object names, e.g. 'news-00*.json'."
    )
    limit: int | None = Field(default=None, ge=1, description="Replay at most this many.")
    rate: float | None = Field(default=None, gt=0, description="Messages per second, at most.")
    dry_run: bool = Field(default=False, description="Plan only: publish nothing.")
    reason: str | None = Field(default=None, max_length=2000, description="Kept in provenance.")
    child_execution_id: ExecutionId | None = Field(
        default=None, description="Id for the child execution (default: generated)."
    )
    replay_id: ReplayId | None = Field(
        default=None, description="Id for the replay (default: generated)."
    )
    requested_by: str | None = Field(default=None, max_length=255)
    dagster_run_id: str | None = Field(default=None, max_length=64)

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> ReplayRequest:
        return validated(cls, data, what="replay request")


class ReplayPlan(BaseModel):
    """The checked plan: route resolved from the parent's snapshot, artefacts listed."""

    model_config = ConfigDict(frozen=True)

    source_execution_id: str
    pipeline: str
    pipeline_version: str
    source_route: str
    from_stage: str
    to_route: str
    target_stage: str = Field(description="The first stage of to_route, which consumes the queue.")
    queue: str
    location: str
    prefix: str
    count: int
    bytes: int
    first_key: str
    last_key: str
    match: str | None = None
    limit: int | None = None
    resume_after: str | None = Field(default=None, description="Resume: last confirmed key.")
    already_confirmed: int = 0


class ReplayProgress(BaseModel):
    """Progress of a running replay, reported as it is saved."""

    model_config = ConfigDict(frozen=True)

    replay_id: str
    confirmed: int
    total: int
    bytes: int
    rate: float = Field(description="Confirmed messages per second since this run started.")
    last_key: str | None


class ReplayResult(BaseModel):
    """How a replay ended. ``state`` is SUCCEEDED, CANCELLED or DRY_RUN (failures raise)."""

    model_config = ConfigDict(frozen=True)

    state: Literal["SUCCEEDED", "CANCELLED", "DRY_RUN"]
    plan: ReplayPlan
    replay_id: str | None = None
    child_execution_id: str | None = None
    confirmed: int = 0
    total: int = 0
    bytes: int = 0
    resent: int = 0
    seconds: float = 0.0
    last_confirmed_key: str | None = None

    @property
    def rate(self) -> float:
        return self.confirmed / self.seconds if self.seconds > 0 else 0.0
