"""The recovery manager: restart a failed execution from its last succeeded stage, once."""

from __future__ import annotations

__all__ = ["RecoveryManager"]

import logging

from ..errors import (
    AlreadyRecoveringError,
    FactflowReplayError,
    NotFailedError,
    NothingSucceededError,
)
from ..executions import ExecutionStatus, ExecutionStore
from ..messages import InitMessage
from ..queues.base import QueuePublisher
from ..settings import DEFAULTS
from ..snapshot import ConfigSnapshot, StageRef
from ..storage.base import ArtefactStore
from .models import RecoveryResult
from .restart import check_input_stored, check_settled, restart_point, stage_input

log = logging.getLogger(__name__)


class RecoveryManager:
    """Recovers a FAILED execution by publishing one init message at its first unfinished stage.

    Refuses (publishing nothing) when the execution is not failed, is already being
    recovered, still has a stage of the failed attempt running (for ``settle_seconds``
    after the failure), has no succeeded stage (that would fetch the sources again: a rerun, not a
    recovery), or when the artefacts it would restart from are missing. Attempts are
    counted in the execution store; past ``max_attempts`` the execution becomes
    NEEDS_ATTENTION. Two recoveries of one failure, in any processes, publish once: the
    claim is a conditional update in the store.
    """

    def __init__(
        self,
        *,
        artefacts: ArtefactStore,
        executions: ExecutionStore,
        publisher: QueuePublisher,
        max_attempts: int = DEFAULTS.recovery_max_attempts,
        settle_seconds: float = DEFAULTS.recovery_settle_seconds,
    ) -> None:
        self.artefacts = artefacts
        self.executions = executions
        self.publisher = publisher
        self.max_attempts = max_attempts
        self.settle_seconds = settle_seconds

    def check(self, execution_id: str, *, force: bool = False) -> tuple[str, str]:
        """What can be refused without counting storage: failed, not already recovering,
        settled (unless ``force``), a stage to restart from, its queue exists. Returns the
        restart route and stage; nothing is changed (the claim, made when it publishes, is
        what stops two recoveries). What an HTTP request checks before it submits."""
        snapshot, route, stage, _ = self._check(execution_id, force=force)
        self.publisher.check_queue(snapshot.config.route(route).stage_queue(stage))
        return route, stage

    def _check(
        self, execution_id: str, *, force: bool
    ) -> tuple[ConfigSnapshot, str, str, StageRef]:
        execution = self.executions.get_execution(execution_id)
        if execution.status is ExecutionStatus.RECOVERING:
            raise AlreadyRecoveringError(execution_id, execution.recovery_attempts)
        if execution.status is not ExecutionStatus.FAILED:
            raise NotFailedError(execution_id, execution.status)
        if not force:
            check_settled(self.executions, execution, settle_seconds=self.settle_seconds)
        snapshot = self.executions.snapshot_of(execution_id)
        route, stage = restart_point(self.executions, execution_id)
        source = stage_input(execution, snapshot, route, stage)
        if source is None:  # pragma: no cover - a stage after a succeeded one has an input
            raise NothingSucceededError(execution_id)
        return snapshot, route, stage, source

    def recover(
        self,
        execution_id: str,
        *,
        reason: str | None = None,
        requested_by: str | None = None,
        dagster_run_id: str | None = None,
        force: bool = False,
    ) -> RecoveryResult:
        """Recover ``execution_id``; ``force`` skips waiting for the failed attempt's still
        running stages to settle (see :func:`check_settled`)."""
        snapshot, route, stage, source = self._check(execution_id, force=force)
        count, _ = check_input_stored(self.artefacts, self.executions, source)
        queue = snapshot.config.route(route).stage_queue(stage)
        self.publisher.check_queue(queue)
        claim = self.executions.claim_recovery(
            execution_id,
            restart_route=route,
            restart_stage=stage,
            reset=snapshot.config.downstream(route, stage),
            max_attempts=self.max_attempts,
            reason=reason,
            requested_by=requested_by,
            dagster_run_id=dagster_run_id,
        )
        init = InitMessage(
            kind="recover",
            execution_id=execution_id,
            route=route,
            stage=stage,
            attempt=claim.attempt,
            input=source,
            reason=reason,
            requested_by=requested_by,
            dagster_run_id=dagster_run_id,
        )
        try:
            self.publisher.publish(queue, [init.message()])
        except FactflowReplayError as exc:
            self.executions.finish_recovery(claim, error=str(exc))
            raise
        self.executions.finish_recovery(claim)
        log.info(
            "recovery %d of %s: restart at %s/%s from %d stored artefacts of %s/%s",
            claim.number,
            execution_id,
            route,
            stage,
            count,
            source.route,
            source.stage,
        )
        return RecoveryResult(
            execution_id=execution_id,
            recovery=claim.number,
            attempt=claim.attempt,
            restart_route=route,
            restart_stage=stage,
            queue=queue,
            init_message_id=claim.init_message_id,
            input=source,
            input_artefacts=count,
        )
