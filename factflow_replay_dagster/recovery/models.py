"""Typed results of a same-pipeline rerun and of a recovery."""

from __future__ import annotations

__all__ = ["RecoveryResult", "RerunResult"]

from pydantic import BaseModel, ConfigDict

from ..snapshot import StageRef


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
