"""What the API answers besides the core's own models (plans, statuses, execution details)."""

from __future__ import annotations

__all__ = ["CancelAccepted", "Health", "Readiness", "ReplayAccepted", "RunAccepted"]

from typing import Literal

from pydantic import BaseModel, Field


class ReplayAccepted(BaseModel):
    """A replay's Dagster run was submitted: follow it at ``status_url`` or ``events_url``."""

    replay_id: str
    child_execution_id: str
    dagster_run_id: str
    status_url: str = Field(description="GET: the replay's state and progress.")
    events_url: str = Field(description="GET: its progress as server-sent events.")
    execution_url: str = Field(description="GET: the child execution.")


class RunAccepted(BaseModel):
    """A rerun's or a recovery's Dagster run was submitted."""

    kind: Literal["rerun", "recovery"]
    execution_id: str
    dagster_run_id: str
    route: str = Field(description="The route of the stage that restarts.")
    stage: str = Field(description="The stage that restarts (a recovery's: where it resumes).")
    status_url: str = Field(description="GET: the execution, its lineage and recoveries.")


class CancelAccepted(BaseModel):
    """The replay's Dagster run was asked to stop; it stops at a message boundary and saves
    its position (resume it with ``POST /api/v1/replays/{id}/resume``)."""

    replay_id: str
    dagster_run_id: str
    status_url: str


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    """Whether the database, broker, storage and Dagster answer; what is down, and why."""

    status: Literal["ready", "not_ready"]
    down: list[str] = Field(default_factory=list, description="What does not answer.")
    checks: dict[str, str] = Field(description="Each dependency: 'ok', or what went wrong.")
