"""Everything recorded about one execution, in one typed view: what ``execution show`` prints
and ``GET /api/v1/executions/{id}`` returns, so both show the same."""

from __future__ import annotations

__all__ = ["ExecutionDetails", "RouteView", "StageQueue", "execution_details"]

from pydantic import BaseModel, ConfigDict, Field

from ..snapshot import ConfigSnapshot
from .records import ExecutionSummary, RecoveryRecord, ReplaySummary, StageLineage
from .store import ExecutionStore


class StageQueue(BaseModel):
    """A stage of a route and the queue it consumes."""

    model_config = ConfigDict(frozen=True)

    stage: str
    queue: str


class RouteView(BaseModel):
    """A route of the execution's config snapshot (never today's config)."""

    model_config = ConfigDict(frozen=True)

    route: str
    queue: str
    forward_to: str | None
    stages: list[StageQueue]


class ExecutionDetails(BaseModel):
    """Status, snapshot routes, lineage and provenance both ways: where the execution came
    from (``execution.replay_source``, ``execution.parent_id``) and what was replayed from it
    (``replays``, ``children``)."""

    model_config = ConfigDict(frozen=True)

    execution: ExecutionSummary
    routes: list[RouteView] = Field(description="The routes of its config snapshot.")
    lineage: list[StageLineage] = Field(description="Each stage's status and artefacts.")
    children: list[str] = Field(description="Executions replayed from this one, oldest first.")
    replays: list[ReplaySummary] = Field(description="Replays of this execution's artefacts.")
    recoveries: list[RecoveryRecord] = Field(description="Recoveries of this execution.")


def execution_details(executions: ExecutionStore, execution_id: str) -> ExecutionDetails:
    """The details of ``execution_id`` (:class:`UnknownExecutionError` if not recorded)."""
    record = executions.get_execution(execution_id)
    snapshot = ConfigSnapshot.parse(record.snapshot, source=f"snapshot of {record.id!r}")
    routes = [
        RouteView(
            route=route.name,
            queue=route.queue,
            forward_to=route.forward_to,
            stages=[
                StageQueue(stage=s.name, queue=route.stage_queue(s.name)) for s in route.stages
            ],
        )
        for route in snapshot.config.routes
    ]
    return ExecutionDetails(
        execution=ExecutionSummary.model_validate(record.model_dump(exclude={"snapshot"})),
        routes=routes,
        lineage=executions.lineage(execution_id),
        children=[c.id for c in executions.children(execution_id)],
        replays=[
            ReplaySummary.model_validate(r.model_dump(exclude={"request"}))
            for r in executions.list_replays(source_execution_id=execution_id)
        ],
        recoveries=executions.recoveries(execution_id),
    )
