"""What rerun and recovery share: where a stage's input is stored, and checking it is there."""

from __future__ import annotations

__all__ = ["check_input_stored", "check_settled", "restart_point", "stage_input"]

from datetime import UTC, datetime

from ..errors import (
    IncompleteArtefactsError,
    NoArtefactsError,
    NothingSucceededError,
    NotSettledError,
)
from ..executions import ExecutionRecord, ExecutionStore, StageStatus
from ..layout import stage_prefix
from ..snapshot import ConfigSnapshot, StageRef
from ..storage.base import ArtefactStore, summarize


def stage_input(
    execution: ExecutionRecord, snapshot: ConfigSnapshot, route: str, stage: str
) -> StageRef | None:
    """The stored artefacts ``route/stage`` consumes: the previous stage of this execution;
    for the first stage of a replay's target route, the parent's replayed stage; ``None``
    for a source stage (it fetches its own input)."""
    source = execution.replay_source
    target_first = source is not None and stage == snapshot.config.route(route).stages[0].name
    if source is not None and target_first and route == source.to_route:
        return StageRef(
            execution_id=source.parent_execution_id,
            route=source.source_route,
            stage=source.from_stage,
        )
    previous = snapshot.config.previous_stage(route, stage)
    if previous is None:
        return None
    return StageRef(execution_id=execution.id, route=previous[0], stage=previous[1])


def check_input_stored(
    artefacts: ArtefactStore, executions: ExecutionStore, ref: StageRef
) -> tuple[int, int]:
    """Count the stored input (objects, bytes); fail if there is none or less than its
    lineage recorded. Nothing is changed either way."""
    prefix = stage_prefix(ref.execution_id, ref.route, ref.stage)
    stored = summarize(artefacts, prefix)
    if stored.count == 0:
        raise NoArtefactsError(artefacts.location, prefix, detail=" to restart from")
    lineage = executions.stage_lineage(ref.execution_id, ref.route, ref.stage)
    if lineage is not None and stored.count < lineage.artefact_count:
        raise IncompleteArtefactsError(
            artefacts.location, prefix, recorded=lineage.artefact_count, stored=stored.count
        )
    return stored.count, stored.bytes


def restart_point(executions: ExecutionStore, execution_id: str) -> tuple[str, str]:
    """The first stage, in pipeline order, that did not succeed, after one that did.

    :class:`NothingSucceededError` when no stage succeeded (or all did).
    """
    succeeded = False
    for row in executions.lineage(execution_id):
        if row.status is StageStatus.SUCCEEDED:
            succeeded = True
        elif succeeded:
            return row.route, row.stage
        else:
            break
    raise NothingSucceededError(execution_id)


def check_settled(
    executions: ExecutionStore, execution: ExecutionRecord, *, settle_seconds: float
) -> None:
    """Raise :class:`NotSettledError` while a stage upstream of the failed one still runs in
    the failed attempt and the failure is younger than ``settle_seconds``.

    Workers keep processing the failed attempt's upstream stages (one usually finishes
    moments later); waiting lets the recovery restart after it instead of redoing it. Stages
    after the failed one do not count: the recovery resets them. Past ``settle_seconds`` the
    stages are presumed dead (a crashed worker) and recovery restarts from what succeeded.
    """
    running = []
    for row in executions.lineage(execution.id):  # pipeline order
        if row.attempt != execution.attempt:
            continue
        if row.status is StageStatus.FAILED:
            break
        if row.status is StageStatus.RUNNING:
            running.append(f"{row.route}/{row.stage}")
    if not running:
        return
    failed_at = execution.finished_at or execution.updated_at
    age = (datetime.now(UTC) - failed_at).total_seconds()
    if age < settle_seconds:
        raise NotSettledError(execution.id, running, settle_seconds - age)
