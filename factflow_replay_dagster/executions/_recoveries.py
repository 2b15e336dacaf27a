"""Recovery attempts, claimed in the database so two recoveries of one failure publish once."""

from __future__ import annotations

__all__ = ["RecoveriesMixin", "RecoveryClaim"]

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select

from ..errors import AlreadyRecoveringError, NotFailedError, RecoveryLimitError
from ..messages import init_message_id
from ._lineage import LineageMixin
from .models import Recovery, utcnow
from .records import ExecutionStatus, RecoveryRecord


@dataclass(frozen=True, slots=True)
class RecoveryClaim:
    """The right to publish one init message: recovery ``number`` of the execution (its row;
    numbers are never reused), which restarts it as execution attempt ``attempt``.

    ``ExecutionRecord.recovery_attempts`` counts only claims that did not fail to publish: a
    broker outage does not use up the attempts a failing stage is allowed."""

    execution_id: str
    number: int
    attempt: int
    init_message_id: str


class RecoveriesMixin(LineageMixin):
    def claim_recovery(
        self,
        execution_id: str,
        *,
        restart_route: str,
        restart_stage: str,
        reset: Sequence[tuple[str, str]],
        max_attempts: int,
        reason: str | None = None,
        requested_by: str | None = None,
        dagster_run_id: str | None = None,
    ) -> RecoveryClaim:
        """Atomically: check the execution is FAILED and not yet claimed for this failure,
        count the attempt, reset ``reset`` stages for a new attempt, mark it RECOVERING.

        Of two concurrent callers exactly one gets a claim; the other gets
        :class:`AlreadyRecoveringError`. Past ``max_attempts`` the execution becomes
        NEEDS_ATTENTION and :class:`RecoveryLimitError` is raised.
        """
        limit_reached = None
        with self._tx(events=True) as session:
            execution = self._execution_row(session, execution_id, lock=True)
            claimed = session.scalars(
                select(Recovery).where(
                    Recovery.execution_id == execution_id,
                    Recovery.failure_count == execution.failure_count,
                    Recovery.state != "FAILED",
                )
            ).first()
            if execution.status == ExecutionStatus.RECOVERING.value or (
                claimed is not None and execution.status != ExecutionStatus.FAILED.value
            ):
                raise AlreadyRecoveringError(execution_id, execution.recovery_attempts)
            if execution.status != ExecutionStatus.FAILED.value:
                raise NotFailedError(execution_id, execution.status)
            if execution.recovery_attempts >= max_attempts:
                execution.status = ExecutionStatus.NEEDS_ATTENTION.value
                execution.updated_at = utcnow()
                self._emit(
                    session,
                    execution_id,
                    "status",
                    status=execution.status,
                    data={"recovery_attempts": execution.recovery_attempts},
                )
                limit_reached = execution.recovery_attempts
            else:
                now = utcnow()
                number = 1 + (
                    session.scalar(
                        select(func.max(Recovery.attempt)).where(
                            Recovery.execution_id == execution_id
                        )
                    )
                    or 0
                )
                execution.recovery_attempts += 1
                execution.attempt += 1
                execution.status = ExecutionStatus.RECOVERING.value
                execution.updated_at = now
                execution.finished_at = None
                claim = RecoveryClaim(
                    execution_id=execution_id,
                    number=number,
                    attempt=execution.attempt,
                    init_message_id=init_message_id(execution_id, execution.attempt),
                )
                session.add(
                    Recovery(
                        execution_id=execution_id,
                        attempt=claim.number,
                        failure_count=execution.failure_count,
                        restart_route=restart_route,
                        restart_stage=restart_stage,
                        init_message_id=claim.init_message_id,
                        state="CLAIMED",
                        reason=reason,
                        requested_by=requested_by,
                        dagster_run_id=dagster_run_id,
                        created_at=now,
                    )
                )
                self._reset_stages(
                    session,
                    execution,
                    reset,
                    execution.attempt,
                    {"recovery": claim.number, "reason": reason},
                )
                self._emit(
                    session,
                    execution_id,
                    "status",
                    status=execution.status,
                    at=now,
                    data={"recovery": claim.number, "route": restart_route, "stage": restart_stage},
                )
        if limit_reached is not None:
            raise RecoveryLimitError(execution_id, limit_reached, max_attempts)
        return claim

    def finish_recovery(self, claim: RecoveryClaim, *, error: str | None = None) -> None:
        """The init message was published (``error`` None) or could not be: then the
        execution is FAILED again (same failure, so a later recovery may try again)."""
        with self._tx(events=True) as session:
            row = session.get(Recovery, (claim.execution_id, claim.number), with_for_update=True)
            if row is None:  # pragma: no cover - claims always insert their row
                return
            row.state = "PUBLISHED" if error is None else "FAILED"
            row.error = error
            if error is not None:
                execution = self._execution_row(session, claim.execution_id, lock=True)
                # A recovery that could not publish restarted nothing: it is not an attempt.
                execution.recovery_attempts = max(execution.recovery_attempts - 1, 0)
                if execution.status == ExecutionStatus.RECOVERING.value:
                    execution.status = ExecutionStatus.FAILED.value
                    execution.error = f"recovery {claim.number} could not publish: {error}"
                    execution.updated_at = utcnow()
                    self._emit(
                        session,
                        claim.execution_id,
                        "status",
                        status=execution.status,
                        data={"error": execution.error, "republish": True},
                    )

    def recoveries(self, execution_id: str) -> list[RecoveryRecord]:
        query = (
            select(Recovery).where(Recovery.execution_id == execution_id).order_by(Recovery.attempt)
        )
        with self._tx(read=True) as session:
            return [RecoveryRecord.model_validate(row) for row in session.scalars(query).all()]
