"""Same-pipeline rerun: restart one stage (and what follows) inside an existing execution."""

from __future__ import annotations

__all__ = ["RerunService"]

import logging
from datetime import UTC, datetime

from ..errors import FactflowReplayError, InvalidStateError
from ..executions import ExecutionStatus, ExecutionStore
from ..messages import InitMessage
from ..queues.base import QueuePublisher
from ..storage.base import ArtefactStore
from .models import RerunRequest, RerunResult
from .restart import check_input_stored, stage_input

log = logging.getLogger(__name__)

#: An execution must be at rest to rerun a stage of it.
_AT_REST = [
    ExecutionStatus.SUCCEEDED,
    ExecutionStatus.FAILED,
    ExecutionStatus.CANCELLED,
    ExecutionStatus.NEEDS_ATTENTION,
    ExecutionStatus.REGISTERED,
]


class RerunService:
    """Publishes an init message that reruns ``stage`` of an execution from stored input.

    The queue comes from the execution's own snapshot. Lineage of the rerun stages records
    who asked, why, when, and the Dagster run. With ``only_this_stage`` the following
    stages are not rerun (the stage's new outputs are stored but not forwarded).
    """

    def __init__(
        self, *, artefacts: ArtefactStore, executions: ExecutionStore, publisher: QueuePublisher
    ) -> None:
        self.artefacts = artefacts
        self.executions = executions
        self.publisher = publisher

    def check(self, request: RerunRequest) -> tuple[str, str]:
        """What can be refused without counting storage: the execution exists and is at rest,
        its snapshot has the stage (in ``route``), the stage's queue exists. Returns the route
        and the queue; nothing is changed. What an HTTP request checks before it submits."""
        execution = self.executions.get_execution(request.execution_id)
        snapshot = self.executions.snapshot_of(request.execution_id)
        route = snapshot.resolve_stage(execution.id, request.stage, route=request.route)
        queue = snapshot.config.route(route).stage_queue(request.stage)
        self.publisher.check_queue(queue)
        if execution.status not in _AT_REST:
            raise InvalidStateError(
                f"execution {execution.id!r} is {execution.status}; a rerun needs it at rest "
                f"({' or '.join(sorted(_AT_REST))})"
            )
        return route, queue

    def rerun(
        self,
        execution_id: str,
        stage: str,
        *,
        route: str | None = None,
        only_this_stage: bool = False,
        reason: str | None = None,
        requested_by: str | None = None,
        dagster_run_id: str | None = None,
    ) -> RerunResult:
        execution = self.executions.get_execution(execution_id)
        snapshot = self.executions.snapshot_of(execution_id)
        route = snapshot.resolve_stage(execution_id, stage, route=route)
        source = stage_input(execution, snapshot, route, stage)
        if source is not None:
            check_input_stored(self.artefacts, self.executions, source)
        queue = snapshot.config.route(route).stage_queue(stage)
        self.publisher.check_queue(queue)
        stages = [(route, stage)] if only_this_stage else snapshot.config.downstream(route, stage)
        note = {
            "rerun": {
                "reason": reason,
                "requested_by": requested_by,
                "dagster_run_id": dagster_run_id,
                "at": datetime.now(UTC).isoformat(),
            }
        }
        attempt = self.executions.begin_attempt(execution_id, stages, note=note, only_from=_AT_REST)
        init = InitMessage(
            kind="rerun",
            execution_id=execution_id,
            route=route,
            stage=stage,
            attempt=attempt,
            input=source,
            continue_downstream=not only_this_stage,
            reason=reason,
            requested_by=requested_by,
            dagster_run_id=dagster_run_id,
        )
        try:
            self.publisher.publish(queue, [init.message()])
        except FactflowReplayError as exc:
            self.executions.set_status(
                execution_id,
                ExecutionStatus.FAILED,
                error=f"rerun of {route}/{stage} could not publish: {exc}",
            )
            raise
        log.info(
            "rerun of %s/%s of %s published as attempt %d", route, stage, execution_id, attempt
        )
        return RerunResult(
            execution_id=execution_id,
            route=route,
            stage=stage,
            attempt=attempt,
            queue=queue,
            init_message_id=init.message_id,
            input=source,
            stages=[f"{r}/{s}" for r, s in stages],
        )
