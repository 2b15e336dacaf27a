"""Per-stage lineage: attempts, processed-message de-duplication, counts and completion."""

from __future__ import annotations

__all__ = ["LineageMixin", "ProcessedOutcome"]

from collections.abc import Generator, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..errors import InvalidStateError
from ._base import StoreBase
from .models import Execution, ProcessedMessage, Stage, StageObject, utcnow
from .records import ExecutionStatus, StageLineage, StageStatus

#: Execution statuses from which the runtime may (re)start work.
ACTIVE = (ExecutionStatus.PENDING, ExecutionStatus.RUNNING, ExecutionStatus.RECOVERING)


@dataclass(frozen=True, slots=True)
class ProcessedOutcome:
    """What recording one processed input did.

    ``recorded`` is False for a duplicate (already processed in this attempt) or a stale
    message (an older attempt); ``completed`` says this call finished the stage, and
    ``execution_succeeded`` that it finished the whole execution.
    """

    recorded: bool
    completed: bool = False
    execution_succeeded: bool = False
    stale: bool = False


class LineageMixin(StoreBase):
    # -- attempts -------------------------------------------------------------------------

    def _reset_stages(
        self,
        session: Session,
        execution: Execution,
        stages: Sequence[tuple[str, str]],
        attempt: int,
        note: dict[str, Any] | None,
    ) -> None:
        from ..snapshot import ConfigSnapshot

        snapshot = ConfigSnapshot.parse(execution.snapshot)
        positions = {
            key: index
            for index, key in enumerate(
                (route.name, stage.name) for route, stage in snapshot.config.iter_stages()
            )
        }
        for route, stage in stages:
            row = session.get(Stage, (execution.id, route, stage), with_for_update=True)
            if row is None:
                row = Stage(execution_id=execution.id, route=route, stage=stage)
                session.add(row)
            row.position = positions[(route, stage)]
            row.status = StageStatus.PENDING.value
            row.attempt = attempt
            row.inputs_expected = None
            row.inputs_processed = 0
            row.artefact_count = 0
            row.bytes = 0
            row.end_sent = False
            row.first_key = None
            row.last_key = None
            row.started_at = None
            row.finished_at = None
            row.error = None
            row.note = note
            row.manifest = True  # this attempt records each key it stores, from none
            session.execute(
                delete(StageObject).where(
                    StageObject.execution_id == execution.id,
                    StageObject.route == route,
                    StageObject.stage == stage,
                )
            )
            self._emit(
                session,
                execution.id,
                "stage",
                status=row.status,
                route=route,
                stage=stage,
                data={"attempt": attempt},
            )

    def begin_attempt(
        self,
        execution_id: str,
        stages: Sequence[tuple[str, str]],
        *,
        note: dict[str, Any] | None = None,
        only_from: Iterable[ExecutionStatus] | None = None,
    ) -> int:
        """Start a new attempt covering ``stages`` (reset to PENDING); returns its number.

        Used for a first run, a same-pipeline rerun and a replay's child execution. With
        ``only_from`` the execution must be in one of those statuses, else
        :class:`InvalidStateError` (checked and changed in one transaction).
        """
        with self._tx(events=True) as session:
            execution = self._execution_row(session, execution_id, lock=True)
            allowed = {s.value for s in only_from} if only_from is not None else None
            if allowed is not None and execution.status not in allowed:
                raise InvalidStateError(
                    f"execution {execution_id!r} is {execution.status}; this needs it to be "
                    f"{' or '.join(sorted(allowed))}"
                )
            execution.attempt += 1
            execution.updated_at = utcnow()
            if execution.status != ExecutionStatus.PENDING.value:
                execution.status = ExecutionStatus.PENDING.value
                execution.finished_at = None
                self._emit(session, execution_id, "status", status=execution.status)
            self._reset_stages(session, execution, stages, execution.attempt, note)
            return execution.attempt

    def record_stored_stage(
        self,
        execution_id: str,
        route: str,
        stage: str,
        *,
        count: int,
        size: int,
        first_key: str | None = None,
        last_key: str | None = None,
        note: dict[str, Any] | None = None,
        keys: Iterable[str] | None = None,
    ) -> None:
        """Record a stage whose artefacts someone else stored (a registered execution) as
        SUCCEEDED with what storage holds; ``keys`` (what it holds now) become its manifest."""
        with self._tx(events=True) as session:
            from ..snapshot import ConfigSnapshot

            execution = self._execution_row(session, execution_id, lock=True)
            snapshot = ConfigSnapshot.parse(execution.snapshot)
            order = [(r.name, s.name) for r, s in snapshot.config.iter_stages()]
            now = utcnow()
            session.add(
                Stage(
                    execution_id=execution_id,
                    route=route,
                    stage=stage,
                    position=order.index((route, stage)),
                    status=StageStatus.SUCCEEDED.value,
                    attempt=execution.attempt,
                    inputs_expected=None,
                    inputs_processed=0,
                    artefact_count=count,
                    bytes=size,
                    end_sent=True,
                    started_at=None,
                    finished_at=now,
                    error=None,
                    note=note,
                    first_key=first_key,
                    last_key=last_key,
                    manifest=keys is not None,
                )
            )
            if keys is not None:
                self._add_keys(session, execution_id, route, stage, keys)
            self._emit(
                session,
                execution_id,
                "stage",
                status=StageStatus.SUCCEEDED.value,
                route=route,
                stage=stage,
                at=now,
                data={
                    "attempt": execution.attempt,
                    "artefacts": count,
                    "bytes": size,
                    "first_key": first_key,
                    "last_key": last_key,
                },
            )

    # -- reading --------------------------------------------------------------------------

    def lineage(self, execution_id: str) -> list[StageLineage]:
        """Every stage row of the execution, in pipeline order."""
        query = select(Stage).where(Stage.execution_id == execution_id).order_by(Stage.position)
        with self._tx(read=True) as session:
            self._execution_row(session, execution_id)
            return [StageLineage.model_validate(row) for row in session.scalars(query).all()]

    def stage_lineage(self, execution_id: str, route: str, stage: str) -> StageLineage | None:
        with self._tx(read=True) as session:
            row = session.get(Stage, (execution_id, route, stage))
            return None if row is None else StageLineage.model_validate(row)

    def manifest_keys(
        self, execution_id: str, route: str, stage: str
    ) -> Generator[str, None, None]:
        """The keys the stage recorded storing, in storage's order (bytewise, as S3 lists);
        streamed, so memory does not grow with the stage. Meaningful when its lineage says
        ``manifest``. It holds a read transaction open: ``close()`` it when stopping early."""
        key = StageObject.key
        if self.dialect == "postgresql":
            key = key.collate("C")  # type: ignore[assignment]  # bytewise, as S3 lists
        query = (
            select(StageObject.key)
            .where(
                StageObject.execution_id == execution_id,
                StageObject.route == route,
                StageObject.stage == stage,
            )
            .order_by(key)
            .execution_options(yield_per=10_000)
        )
        with self._tx(read=True) as session:
            yield from session.scalars(query)

    def _add_keys(
        self, session: Session, execution_id: str, route: str, stage: str, keys: Iterable[str]
    ) -> None:
        """Add ``keys`` to the stage's manifest (a key stored twice is listed once)."""
        from sqlalchemy.dialects import postgresql, sqlite

        insert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert
        chunk: list[dict[str, str]] = []
        for key in keys:
            chunk.append({"execution_id": execution_id, "route": route, "stage": stage, "key": key})
            if len(chunk) == 5_000:
                session.execute(insert(StageObject).on_conflict_do_nothing(), chunk)
                chunk = []
        if chunk:
            session.execute(insert(StageObject).on_conflict_do_nothing(), chunk)

    def is_processed(
        self, execution_id: str, route: str, stage: str, attempt: int, message_id: str
    ) -> bool:
        with self._tx(read=True) as session:
            key = (execution_id, route, stage, attempt, message_id)
            return session.get(ProcessedMessage, key) is not None

    def input_gate(
        self, execution_id: str, route: str, stage: str, attempt: int, message_id: str
    ) -> tuple[bool, StageStatus | None]:
        """In one read: whether this input was processed in this attempt, and the stage's status
        (the runtime skips inputs of a stage that already failed in the attempt)."""
        with self._tx(read=True) as session:
            processed = session.get(
                ProcessedMessage, (execution_id, route, stage, attempt, message_id)
            )
            row = session.get(Stage, (execution_id, route, stage))
            status = StageStatus(row.status) if row is not None and row.attempt == attempt else None
            return processed is not None, status

    # -- the runtime's transitions ---------------------------------------------------------

    def mark_stage_running(self, execution_id: str, route: str, stage: str, attempt: int) -> bool:
        """PENDING → RUNNING for the stage (and the execution); False if stale or not pending."""
        with self._tx(events=True) as session:
            execution = self._execution_row(session, execution_id, lock=True)
            row = session.get(Stage, (execution_id, route, stage), with_for_update=True)
            if row is None or row.attempt != attempt or execution.attempt != attempt:
                return False
            now = utcnow()
            if execution.status in {s.value for s in ACTIVE} and execution.status != "RUNNING":
                execution.status = ExecutionStatus.RUNNING.value
                execution.started_at = execution.started_at or now
                execution.updated_at = now
                execution.error = None
                self._emit(session, execution_id, "status", status=execution.status, at=now)
            if row.status != StageStatus.PENDING.value:
                return False
            row.status = StageStatus.RUNNING.value
            row.started_at = now
            self._emit(
                session,
                execution_id,
                "stage",
                status=row.status,
                route=route,
                stage=stage,
                at=now,
                data={"attempt": attempt},
            )
            return True

    def record_processed(
        self,
        execution_id: str,
        route: str,
        stage: str,
        attempt: int,
        message_id: str,
        *,
        artefacts: int,
        size: int,
        keys: Sequence[str] = (),
    ) -> ProcessedOutcome:
        """Count one processed input (once per message id per attempt) and maybe complete.

        ``keys`` are the objects it stored; the stage keeps the first and last of them.
        """
        with self._tx(events=True) as session:
            row = session.get(Stage, (execution_id, route, stage), with_for_update=True)
            if row is None or row.attempt != attempt:
                return ProcessedOutcome(recorded=False, stale=True)
            try:
                with session.begin_nested():
                    session.add(
                        ProcessedMessage(
                            execution_id=execution_id,
                            route=route,
                            stage=stage,
                            attempt=attempt,
                            message_id=message_id,
                        )
                    )
            except IntegrityError:
                return ProcessedOutcome(recorded=False)
            row.inputs_processed += 1
            row.artefact_count += artefacts
            row.bytes += size
            if keys and row.manifest:
                self._add_keys(session, execution_id, route, stage, keys)
            if keys:
                row.first_key = min(keys) if row.first_key is None else min(row.first_key, *keys)
                row.last_key = max(keys) if row.last_key is None else max(row.last_key, *keys)
            completed, succeeded = self._maybe_complete(session, row)
            return ProcessedOutcome(True, completed, succeeded)

    def set_inputs_expected(
        self, execution_id: str, route: str, stage: str, attempt: int, expected: int
    ) -> ProcessedOutcome:
        """Record how many inputs the stage gets (from an end marker) and maybe complete."""
        with self._tx(events=True) as session:
            row = session.get(Stage, (execution_id, route, stage), with_for_update=True)
            if row is None or row.attempt != attempt:
                return ProcessedOutcome(recorded=False, stale=True)
            row.inputs_expected = expected
            completed, succeeded = self._maybe_complete(session, row)
            return ProcessedOutcome(True, completed, succeeded)

    def _maybe_complete(self, session: Session, row: Stage) -> tuple[bool, bool]:
        if row.status in (StageStatus.SUCCEEDED.value, StageStatus.FAILED.value):
            return False, False
        if row.inputs_expected is None or row.inputs_processed < row.inputs_expected:
            return False, False
        now = utcnow()
        row.status = StageStatus.SUCCEEDED.value
        row.started_at = row.started_at or now
        row.finished_at = now
        self._emit(
            session,
            row.execution_id,
            "stage",
            status=row.status,
            route=row.route,
            stage=row.stage,
            at=now,
            data={
                "attempt": row.attempt,
                "artefacts": row.artefact_count,
                "bytes": row.bytes,
                "first_key": row.first_key,
                "last_key": row.last_key,
            },
        )
        session.flush()
        unfinished = session.scalar(
            select(func.count())
            .select_from(Stage)
            .where(
                Stage.execution_id == row.execution_id,
                Stage.status != StageStatus.SUCCEEDED.value,
            )
        )
        if unfinished:
            return True, False
        execution = self._execution_row(session, row.execution_id, lock=True)
        if execution.status not in {s.value for s in ACTIVE}:
            return True, False
        execution.status = ExecutionStatus.SUCCEEDED.value
        execution.finished_at = now
        execution.updated_at = now
        self._emit(session, row.execution_id, "status", status=execution.status, at=now)
        return True, True

    def mark_end_sent(self, execution_id: str, route: str, stage: str, attempt: int) -> None:
        """The stage's end marker was confirmed by the next stage's queue."""
        with self._tx() as session:
            row = session.get(Stage, (execution_id, route, stage), with_for_update=True)
            if row is not None and row.attempt == attempt:
                row.end_sent = True

    def fail_stage(
        self, execution_id: str, route: str, stage: str, attempt: int, error: str
    ) -> bool:
        """The stage failed: stage and execution become FAILED (once); False if stale."""
        with self._tx(events=True) as session:
            execution = self._execution_row(session, execution_id, lock=True)
            row = session.get(Stage, (execution_id, route, stage), with_for_update=True)
            if row is None or row.attempt != attempt or execution.attempt != attempt:
                return False
            now = utcnow()
            if row.status != StageStatus.FAILED.value:
                row.status = StageStatus.FAILED.value
                row.finished_at = now
                row.error = error
                self._emit(
                    session,
                    execution_id,
                    "stage",
                    status=row.status,
                    route=route,
                    stage=stage,
                    at=now,
                    data={"attempt": attempt, "error": error},
                )
            if execution.status in {s.value for s in ACTIVE}:
                execution.status = ExecutionStatus.FAILED.value
                execution.failure_count += 1
                execution.error = f"stage {route}/{stage} failed: {error}"
                execution.finished_at = now
                execution.updated_at = now
                self._emit(
                    session,
                    execution_id,
                    "status",
                    status=execution.status,
                    at=now,
                    data={"error": execution.error, "route": route, "stage": stage},
                )
            return True
