"""Replay plans and progress: what was confirmed, and where a resume starts."""

from __future__ import annotations

__all__ = ["ReplaysMixin"]

from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from ..errors import InvalidStateError, UnknownReplayError
from ..ids import validate_id
from ._base import StoreBase
from .models import Replay, utcnow
from .records import ReplayRecord, ReplayState

_FINISHED = {ReplayState.SUCCEEDED, ReplayState.FAILED, ReplayState.CANCELLED}


class ReplaysMixin(StoreBase):
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

    def save_replay_progress(
        self, replay_id: str, *, confirmed: int, bytes_confirmed: int, last_confirmed_key: str
    ) -> None:
        """Record the contiguous confirmed prefix: a resume starts after ``last_confirmed_key``."""
        with self._tx() as session:
            row = session.get(Replay, replay_id, with_for_update=True)
            if row is None:
                raise UnknownReplayError(replay_id)
            row.confirmed = confirmed
            row.bytes_confirmed = bytes_confirmed
            row.last_confirmed_key = last_confirmed_key
            row.updated_at = utcnow()

    def set_replay_state(
        self,
        replay_id: str,
        state: ReplayState,
        *,
        error: str | None = None,
        child_execution_id: str | None = None,
        dagster_run_id: str | None = None,
    ) -> ReplayRecord:
        with self._tx(events=True) as session:
            row = session.get(Replay, replay_id, with_for_update=True)
            if row is None:
                raise UnknownReplayError(replay_id)
            now = utcnow()
            row.state = state.value
            row.updated_at = now
            row.error = error
            row.finished_at = now if state in _FINISHED else None
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
