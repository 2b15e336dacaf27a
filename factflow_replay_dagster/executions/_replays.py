"""Replay plans and progress: what was confirmed, and where a resume starts."""

from __future__ import annotations

__all__ = ["ReplaysMixin"]

from datetime import timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from ..errors import InvalidStateError, UnknownReplayError
from ..ids import validate_id
from ._executions import ExecutionsMixin
from .models import Replay, ReplayShard, utcnow
from .records import ReplayRecord
from .statuses import ExecutionStatus, ReplayState

_FINISHED = {ReplayState.SUCCEEDED, ReplayState.FAILED, ReplayState.CANCELLED}


class ReplaysMixin(ExecutionsMixin):
    def create_replay(
        self,
        replay_id: str,
        *,
        source_execution_id: str,
        source_route: str,
        from_stage: str,
        to_route: str,
        queue: str,
        request: dict[str, Any],
        total: int,
        bytes_total: int,
        first_key: str | None,
        last_key: str | None,
        child_execution_id: str | None = None,
        dagster_run_id: str | None = None,
    ) -> ReplayRecord:
        validate_id(replay_id, kind="replay")
        now = utcnow()
        row = Replay(
            replay_id=replay_id,
            source_execution_id=source_execution_id,
            child_execution_id=child_execution_id,
            source_route=source_route,
            from_stage=from_stage,
            to_route=to_route,
            queue=queue,
            state=ReplayState.PLANNED.value,
            total=total,
            bytes_total=bytes_total,
            confirmed=0,
            bytes_confirmed=0,
            first_key=first_key,
            last_key=last_key,
            request=request,
            dagster_run_id=dagster_run_id,
            created_at=now,
            updated_at=now,
        )
        try:
            with self._tx(events=True) as session:
                self._execution_row(session, source_execution_id)
                session.add(row)
                session.flush()
                self._emit(
                    session,
                    source_execution_id,
                    "replay",
                    status=row.state,
                    data={"replay_id": replay_id},
                )
        except IntegrityError:
            raise InvalidStateError(f"replay {replay_id!r} already exists") from None
        return ReplayRecord.model_validate(row)

    def get_replay(self, replay_id: str) -> ReplayRecord:
        validate_id(replay_id, kind="replay")
        with self._tx(read=True) as session:
            row = session.get(Replay, replay_id)
            if row is None:
                raise UnknownReplayError(replay_id)
            return ReplayRecord.model_validate(row)

    def list_replays(
        self,
        *,
        source_execution_id: str | None = None,
        child_execution_id: str | None = None,
        dagster_run_id: str | None = None,
    ) -> list[ReplayRecord]:
        query = select(Replay).order_by(Replay.created_at)
        if dagster_run_id is not None:
            query = query.where(Replay.dagster_run_id == dagster_run_id)
        if source_execution_id is not None:
            query = query.where(Replay.source_execution_id == source_execution_id)
        if child_execution_id is not None:
            query = query.where(Replay.child_execution_id == child_execution_id)
        with self._tx(read=True) as session:
            return [ReplayRecord.model_validate(row) for row in session.scalars(query).all()]

    def set_replay_state(
        self,
        replay_id: str,
        state: ReplayState,
        *,
        error: str | None = None,
        child_execution_id: str | None = None,
        dagster_run_id: str | None = None,
        owner: str | None = None,
    ) -> ReplayRecord:
        """Move the replay to ``state``; RUNNING takes ``owner`` (the publishing process) and
        starts its heartbeat."""
        with self._tx(events=True) as session:
            row = session.get(Replay, replay_id, with_for_update=True)
            if row is None:
                raise UnknownReplayError(replay_id)
            now = utcnow()
            row.state = state.value
            row.updated_at = now
            row.error = error
            row.finished_at = now if state in _FINISHED else None
            if state is ReplayState.RUNNING:
                row.heartbeat_at = now
                row.owner = owner
            if child_execution_id is not None:
                row.child_execution_id = child_execution_id
            if dagster_run_id is not None:
                row.dagster_run_id = dagster_run_id
            self._emit(
                session,
                row.source_execution_id,
                "replay",
                status=state.value,
                data={
                    "replay_id": replay_id,
                    "child": row.child_execution_id,
                    "confirmed": row.confirmed,
                    "total": row.total,
                    "error": error,
                },
            )
            return ReplayRecord.model_validate(row)

    # -- liveness -----------------------------------------------------------------------------

    def beat_replay(self, replay_id: str) -> None:
        """The publishing process is alive (called every few seconds while it runs)."""
        with self._tx() as session:
            session.execute(
                update(Replay)
                .where(Replay.replay_id == replay_id, Replay.state == ReplayState.RUNNING.value)
                .values(heartbeat_at=utcnow())
            )

    def fail_stale_replays(
        self, *, stale_after: float, replay_id: str | None = None
    ) -> list[ReplayRecord]:
        """Mark FAILED (resumable) every RUNNING replay whose process has not beaten for
        ``stale_after`` seconds (it was killed, or its machine went), and their child
        executions; only ``replay_id`` if given. Returns the replays it marked."""
        cutoff = utcnow() - timedelta(seconds=stale_after)
        query = select(Replay).where(
            Replay.state == ReplayState.RUNNING.value,
            func.coalesce(Replay.heartbeat_at, Replay.updated_at) < cutoff,
        )
        if replay_id is not None:
            query = query.where(Replay.replay_id == replay_id)
        marked = []
        with self._tx(read=True) as session:
            stale = [row.replay_id for row in session.scalars(query).all()]
        for each in stale:
            with self._tx(events=True) as session:
                row = session.get(Replay, each, with_for_update=True)
                beat = row.heartbeat_at or row.updated_at if row is not None else None
                if row is None or row.state != ReplayState.RUNNING.value or beat is None:
                    continue
                if beat >= cutoff:
                    continue  # it beat meanwhile: alive after all
                now = utcnow()
                owner = f" ({row.owner})" if row.owner else ""
                row.error = (
                    f"its publishing process{owner} stopped without a word (no heartbeat since "
                    f"{beat:%Y-%m-%d %H:%M:%S} UTC): killed, or its machine went; "
                    f"{row.confirmed} of {row.total} were confirmed and saved; resume it"
                )
                row.state = ReplayState.FAILED.value
                row.updated_at = row.finished_at = now
                self._emit(
                    session,
                    row.source_execution_id,
                    "replay",
                    status=row.state,
                    data={"replay_id": each, "child": row.child_execution_id, "error": row.error},
                )
                error, child = row.error, row.child_execution_id
                session.execute(
                    update(ReplayShard)
                    .where(
                        ReplayShard.replay_id == each,
                        ReplayShard.state == ReplayState.RUNNING.value,
                    )
                    .values(state=ReplayState.FAILED.value, error=row.error, updated_at=now)
                )
                marked.append(ReplayRecord.model_validate(row))
            if child is not None:
                self.set_status(
                    child,
                    ExecutionStatus.FAILED,
                    error=f"replay {each}: {error}",
                    only_from=[ExecutionStatus.PENDING, ExecutionStatus.RUNNING],
                )
        return marked
