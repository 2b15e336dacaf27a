"""Executions, their status transitions, the change log and counters."""

from __future__ import annotations

__all__ = ["ExecutionsMixin"]

from collections.abc import Iterable
from typing import TYPE_CHECKING

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from ..errors import InvalidStateError
from ..ids import validate_id
from ._base import StoreBase
from .models import Counter, Event, Execution, utcnow
from .records import ExecutionEvent, ExecutionRecord, ReplaySource
from .statuses import FINISHED_STATUSES, ExecutionStatus

if TYPE_CHECKING:
    from ..snapshot import ConfigSnapshot


class ExecutionsMixin(StoreBase):
    def create_execution(
        self,
        execution_id: str,
        snapshot: ConfigSnapshot,
        *,
        origin: str = "run",
        status: ExecutionStatus = ExecutionStatus.PENDING,
        parent_id: str | None = None,
        replay_source: ReplaySource | None = None,
    ) -> ExecutionRecord:
        """Record a new execution with its config snapshot (verbatim); ids must be new."""
        validate_id(execution_id, kind="execution")
        if parent_id is not None:
            validate_id(parent_id, kind="execution")
        now = utcnow()
        row = Execution(
            id=execution_id,
            pipeline=snapshot.config.pipeline,
            pipeline_version=snapshot.config.version,
            snapshot=snapshot.text,
            status=status.value,
            origin=origin,
            parent_id=parent_id,
            replay_source=replay_source.model_dump(mode="json") if replay_source else None,
            attempt=0,
            failure_count=0,
            recovery_attempts=0,
            created_at=now,
            updated_at=now,
        )
        try:
            with self._tx(events=True) as session:
                if parent_id is not None:
                    self._execution_row(session, parent_id)
                session.add(row)
                session.flush()
                self._emit(
                    session,
                    execution_id,
                    "created",
                    status=status.value,
                    at=now,
                    data={"pipeline": row.pipeline, "origin": origin, "parent": parent_id},
                )
        except IntegrityError:
            raise InvalidStateError(f"execution {execution_id!r} already exists") from None
        return ExecutionRecord.model_validate(row)

    def get_execution(self, execution_id: str) -> ExecutionRecord:
        """The execution, or :class:`UnknownExecutionError`."""
        validate_id(execution_id, kind="execution")
        with self._tx(read=True) as session:
            return ExecutionRecord.model_validate(self._execution_row(session, execution_id))

    def find_execution(self, execution_id: str) -> ExecutionRecord | None:
        validate_id(execution_id, kind="execution")
        with self._tx(read=True) as session:
            row = session.get(Execution, execution_id)
            return None if row is None else ExecutionRecord.model_validate(row)

    def get_executions(self, execution_ids: Iterable[str]) -> dict[str, ExecutionRecord]:
        """The recorded executions among ``execution_ids`` (one query), by id."""
        ids = sorted(set(execution_ids))
        if not ids:
            return {}
        with self._tx(read=True) as session:
            rows = session.scalars(select(Execution).where(Execution.id.in_(ids))).all()
            return {row.id: ExecutionRecord.model_validate(row) for row in rows}

    def snapshot_of(self, execution_id: str) -> ConfigSnapshot:
        """The config snapshot the execution was recorded with, parsed."""
        from ..snapshot import ConfigSnapshot

        record = self.get_execution(execution_id)
        return ConfigSnapshot.parse(record.snapshot, source=f"snapshot of {execution_id!r}")

    def list_executions(
        self,
        *,
        status: ExecutionStatus | None = None,
        pipeline: str | None = None,
        parent_id: str | None = None,
        limit: int = 100,
    ) -> list[ExecutionRecord]:
        """Newest first."""
        query = select(Execution).order_by(Execution.created_at.desc(), Execution.id.desc())
        if status is not None:
            query = query.where(Execution.status == status.value)
        if pipeline is not None:
            query = query.where(Execution.pipeline == pipeline)
        if parent_id is not None:
            query = query.where(Execution.parent_id == parent_id)
        with self._tx(read=True) as session:
            rows = session.scalars(query.limit(limit)).all()
            return [ExecutionRecord.model_validate(row) for row in rows]

    def children(self, execution_id: str) -> list[ExecutionRecord]:
        """Executions replayed from this one, oldest first."""
        return sorted(
            self.list_executions(parent_id=execution_id, limit=10_000), key=lambda e: e.created_at
        )

    def set_status(
        self,
        execution_id: str,
        status: ExecutionStatus,
        *,
        error: str | None = None,
        only_from: Iterable[ExecutionStatus] | None = None,
        clear_error: bool = False,
    ) -> bool:
        """Move the execution to ``status``; with ``only_from``, only from those statuses;
        ``clear_error`` forgets the last error (a resumed replay's child).

        Returns whether the row changed (a conditional update: safe between processes).
        """
        validate_id(execution_id, kind="execution")
        now = utcnow()
        values: dict[str, object] = {"status": status.value, "updated_at": now}
        if status is ExecutionStatus.RUNNING:
            values["started_at"] = func.coalesce(Execution.started_at, now)
            values["error"] = None
        if status in FINISHED_STATUSES:
            values["finished_at"] = now
        if error is not None:
            values["error"] = error
        elif clear_error:
            values["error"] = None
        if status is ExecutionStatus.FAILED:
            values["failure_count"] = Execution.failure_count + 1
        query = update(Execution).where(Execution.id == execution_id)
        if only_from is not None:
            query = query.where(Execution.status.in_([s.value for s in only_from]))
        else:
            query = query.where(Execution.status != status.value)
        with self._tx(events=True) as session:
            self._execution_row(session, execution_id)
            result = session.execute(query.values(values))
            changed = bool(result.rowcount > 0)  # type: ignore[attr-defined]
            if changed:
                data = {"error": error} if error else None
                self._emit(session, execution_id, "status", status=status.value, data=data, at=now)
        return changed

    def set_replay_source(self, execution_id: str, source: ReplaySource) -> None:
        with self._tx() as session:
            row = self._execution_row(session, execution_id)
            row.replay_source = source.model_dump(mode="json")
            row.updated_at = utcnow()

    # -- change log ----------------------------------------------------------------------

    def events_since(
        self, cursor: int, *, kinds: Iterable[str] | None = None, limit: int = 1000
    ) -> list[ExecutionEvent]:
        """Change-log entries with ``seq > cursor``, oldest first; cost ∝ what changed."""
        query = select(Event).where(Event.seq > cursor).order_by(Event.seq).limit(limit)
        if kinds is not None:
            query = query.where(Event.kind.in_(list(kinds)))
        with self._tx(read=True) as session:
            return [ExecutionEvent.model_validate(row) for row in session.scalars(query).all()]

    def last_event_seq(self) -> int:
        with self._tx(read=True) as session:
            return int(session.scalar(select(func.coalesce(func.max(Event.seq), 0))) or 0)

    # -- counters ------------------------------------------------------------------------

    def increment_counter(self, execution_id: str, name: str, by: int = 1) -> int:
        """Add ``by`` to a named per-execution counter and return the new value (an upsert)."""
        from sqlalchemy.dialects import postgresql, sqlite

        insert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert
        upsert = insert(Counter).values(execution_id=execution_id, name=name, value=by)
        statement = upsert.on_conflict_do_update(
            index_elements=[Counter.execution_id, Counter.name],
            set_={"value": Counter.value + by},
        ).returning(Counter.value)
        with self._tx() as session:
            return int(session.execute(statement).scalar_one())

    def counter(self, execution_id: str, name: str) -> int:
        with self._tx(read=True) as session:
            row = session.get(Counter, (execution_id, name))
            return 0 if row is None else row.value
