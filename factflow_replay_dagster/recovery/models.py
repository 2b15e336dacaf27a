"""Typed requests and results of a same-pipeline rerun and of a recovery."""

from __future__ import annotations

__all__ = ["RecoveryOptions", "RecoveryResult", "RerunRequest", "RerunResult"]

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from .._validation import validated
from ..ids import ExecutionId, RouteId, StageId
from ..snapshot import StageRef


class RerunRequest(BaseModel):
    """Rerun one stage of an execution (and what follows) from its stored input.

    The one schema of a rerun: ``rerun_stage_job``'s run config (``RerunConfig``) and the
    body of ``POST /api/v1/replay`` take their fields and help texts from here.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    execution_id: ExecutionId = Field(description="The execution (at rest) whose stage is rerun.")
    stage: StageId = Field(description="The stage to rerun; its queue comes from the snapshot.")
    route: RouteId | None = Field(default=None, description="Its route, if the name is ambiguous.")
    only_this_stage: bool = Field(
        default=False, description="Do not rerun the stages after it (outputs not forwarded)."
    )
    reason: str | None = Field(
        default=None, max_length=2000, description="Why: kept in the stage's lineage."
    )

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> RerunRequest:
        return validated(cls, data, what="rerun request")


class RecoveryOptions(BaseModel):
    """What a person chooses about the recovery of a given failed execution: the body of
    ``POST /api/v1/executions/{id}/recover``; ``recovery_job``'s run config adds the id."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    reason: str | None = Field(
        default=None, max_length=2000, description="Why: kept with the recovery."
    )
    force: bool = Field(
        default=False,
        description="Recover now even if a stage of the failed attempt is "
        "still running (its work is redone).",
    )


class RerunResult(BaseModel):
    """A rerun's init message was confirmed: the stage restarts as attempt ``attempt``."""

    model_config = ConfigDict(frozen=True)

    execution_id: str
    route: str
    stage: str
    attempt: int
    queue: str
    init_message_id: str
    input: StageRef | None
    stages: list[str]


class RecoveryResult(BaseModel):
    """A recovery's one init message was confirmed."""

    model_config = ConfigDict(frozen=True)

    execution_id: str
    recovery: int
    attempt: int
    restart_route: str
    restart_stage: str
    queue: str
    init_message_id: str
    input: StageRef
    input_artefacts: int
