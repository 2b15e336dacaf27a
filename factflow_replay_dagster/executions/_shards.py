"""Replay shards in the store: a replay's key ranges, each with its own saved position.

A shard's progress and the replay's totals change in one transaction, so the replay always
reads as the sum of its shards, whichever processes publish them.
"""

from __future__ import annotations

__all__ = ["ShardSpec", "ShardsMixin"]

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from ..errors import UnknownReplayError
from ._replays import ReplaysMixin
from .models import Replay, ReplayShard, utcnow
from .records import ReplayRecord, ShardRecord
from .statuses import ReplayState


@dataclass(frozen=True, slots=True)
class ShardSpec:
    """One key range as a plan cuts it: ``(start_after, stop_at]``, ``total`` objects."""

    shard: int
    start_after: str | None
    stop_at: str
    first_key: str
    total: int
    bytes_total: int


class ShardsMixin(ReplaysMixin):
    def add_replay_shards(self, replay_id: str, shards: Sequence[ShardSpec]) -> None:
        """Record the key ranges of a new replay (PLANNED, nothing confirmed)."""
        now = utcnow()
        with self._tx() as session:
            if session.get(Replay, replay_id) is None:
                raise UnknownReplayError(replay_id)
            session.add_all(
                ReplayShard(
                    replay_id=replay_id,
                    shard=spec.shard,
                    start_after=spec.start_after,
                    stop_at=spec.stop_at,
                    first_key=spec.first_key,
                    total=spec.total,
                    bytes_total=spec.bytes_total,
                    confirmed=0,
                    bytes_confirmed=0,
                    state=ReplayState.PLANNED.value,
                    updated_at=now,
                )
                for spec in shards
            )

    def replay_shards(self, replay_id: str) -> list[ShardRecord]:
        """The replay's shards in key order."""
        query = select(ReplayShard).where(ReplayShard.replay_id == replay_id)
        with self._tx(read=True) as session:
            rows = session.scalars(query.order_by(ReplayShard.shard)).all()
            return [ShardRecord.model_validate(row) for row in rows]

    def save_shard_progress(
        self,
        replay_id: str,
        shard: int,
        *,
        confirmed: int,
        bytes_confirmed: int,
        last_confirmed_key: str,
        holder: tuple[str | None, str | None] | None = None,
    ) -> ReplayRecord:
        """Record the shard's contiguous confirmed prefix (a resume starts after
        ``last_confirmed_key``) and the replay's totals, in one transaction; return the
        replay as it now stands.

        ``holder`` is the ``(dagster_run_id, owner)`` the shard's replay had when the shard
        began. If the replay is RUNNING under another holder (a resume took it over while
        this shard's process lived on), nothing is written: the resume's own shard owns the
        position now. The caller compares the returned record's state and holder to stop.
        """
        with self._tx() as session:
            replay = session.get(Replay, replay_id, with_for_update=True)
            row = session.get(ReplayShard, (replay_id, shard), with_for_update=True)
            if replay is None or row is None:
                raise UnknownReplayError(replay_id)
            running = replay.state == ReplayState.RUNNING.value
            if holder is not None and running and (replay.dagster_run_id, replay.owner) != holder:
                return ReplayRecord.model_validate(replay)
            row.confirmed = confirmed
            row.bytes_confirmed = bytes_confirmed
            row.last_confirmed_key = last_confirmed_key
            row.updated_at = utcnow()
            session.flush()
            self._total_up(session, replay_id, last_confirmed_key=last_confirmed_key)
            session.refresh(replay)
            return ReplayRecord.model_validate(replay)

    def set_shard_state(
        self, replay_id: str, shard: int, state: ReplayState, *, error: str | None = None
    ) -> None:
        with self._tx() as session:
            session.execute(
                update(ReplayShard)
                .where(ReplayShard.replay_id == replay_id, ReplayShard.shard == shard)
                .values(state=state.value, error=error, updated_at=utcnow())
            )

    @staticmethod
    def _total_up(session: Session, replay_id: str, *, last_confirmed_key: str) -> None:
        """The replay's confirmed counts as its shards' sum; its position is the shard's when
        it has one shard (several shards have one position each)."""
        confirmed, size, shards = session.execute(
            select(
                func.coalesce(func.sum(ReplayShard.confirmed), 0),
                func.coalesce(func.sum(ReplayShard.bytes_confirmed), 0),
                func.count(),
            ).where(ReplayShard.replay_id == replay_id)
        ).one()
        values: dict[str, object] = {
            "confirmed": confirmed,
            "bytes_confirmed": size,
            "updated_at": utcnow(),
            "heartbeat_at": utcnow(),
        }
        if shards == 1:
            values["last_confirmed_key"] = last_confirmed_key
        session.execute(update(Replay).where(Replay.replay_id == replay_id).values(**values))
