"""SQLAlchemy 2 table mappings of the execution store; Alembic migrations create them."""

from __future__ import annotations

__all__ = [
    "Base",
    "Counter",
    "Event",
    "Execution",
    "ProcessedMessage",
    "Recovery",
    "Replay",
    "ReplayShard",
    "Stage",
    "StageObject",
]

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

ID = String(128)
KEY = String(1024)


class UTCDateTime(TypeDecorator[datetime]):
    """Stores UTC, returns aware UTC datetimes on every backend (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; use datetime.now(UTC)")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime, dict[str, Any]: JSON}


class Execution(Base):
    __tablename__ = "executions"

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    pipeline: Mapped[str] = mapped_column(ID, index=True)
    pipeline_version: Mapped[str] = mapped_column(String(64))
    snapshot: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(32), index=True)
    origin: Mapped[str] = mapped_column(String(32))
    parent_id: Mapped[str | None] = mapped_column(ForeignKey("executions.id"), index=True)
    replay_source: Mapped[dict[str, Any] | None]
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    failure_count: Mapped[int] = mapped_column(Integer, default=0)
    recovery_attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)


class Stage(Base):
    """Lineage of one stage of one execution (the current attempt's counts)."""

    __tablename__ = "stage_lineage"

    execution_id: Mapped[str] = mapped_column(ForeignKey("executions.id"), primary_key=True)
    route: Mapped[str] = mapped_column(ID, primary_key=True)
    stage: Mapped[str] = mapped_column(ID, primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(32))
    attempt: Mapped[int] = mapped_column(Integer)
    inputs_expected: Mapped[int | None] = mapped_column(Integer)
    inputs_processed: Mapped[int] = mapped_column(Integer, default=0)
    artefact_count: Mapped[int] = mapped_column(Integer, default=0)
    bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    end_sent: Mapped[bool] = mapped_column(Boolean, default=False)
    first_key: Mapped[str | None] = mapped_column(KEY)
    last_key: Mapped[str | None] = mapped_column(KEY)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)
    note: Mapped[dict[str, Any] | None]
    #: Whether ``stage_objects`` holds every key this attempt stored (its manifest).
    manifest: Mapped[bool] = mapped_column(Boolean, default=False)


class StageObject(Base):
    """One key a stage stored: the stage's manifest, so a replay of any selection can tell
    exactly which of its objects storage lost."""

    __tablename__ = "stage_objects"

    execution_id: Mapped[str] = mapped_column(ID, primary_key=True)
    route: Mapped[str] = mapped_column(ID, primary_key=True)
    stage: Mapped[str] = mapped_column(ID, primary_key=True)
    key: Mapped[str] = mapped_column(KEY, primary_key=True)


class ProcessedMessage(Base):
    """Message ids a stage has handled in an attempt: the runtime's de-duplication."""

    __tablename__ = "processed_messages"

    execution_id: Mapped[str] = mapped_column(ID, primary_key=True)
    route: Mapped[str] = mapped_column(ID, primary_key=True)
    stage: Mapped[str] = mapped_column(ID, primary_key=True)
    attempt: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[str] = mapped_column(String(255), primary_key=True)


class Replay(Base):
    """A replay's plan and progress; ``last_confirmed_key`` is where a resume starts after."""

    __tablename__ = "replays"

    replay_id: Mapped[str] = mapped_column(ID, primary_key=True)
    source_execution_id: Mapped[str] = mapped_column(ForeignKey("executions.id"), index=True)
    child_execution_id: Mapped[str | None] = mapped_column(ID, index=True)
    source_route: Mapped[str] = mapped_column(ID)
    from_stage: Mapped[str] = mapped_column(ID)
    to_route: Mapped[str] = mapped_column(ID)
    queue: Mapped[str] = mapped_column(String(255))
    state: Mapped[str] = mapped_column(String(32), index=True)
    total: Mapped[int] = mapped_column(Integer, default=0)
    bytes_total: Mapped[int] = mapped_column(BigInteger, default=0)
    confirmed: Mapped[int] = mapped_column(Integer, default=0)
    bytes_confirmed: Mapped[int] = mapped_column(BigInteger, default=0)
    first_key: Mapped[str | None] = mapped_column(KEY)
    last_key: Mapped[str | None] = mapped_column(KEY)
    last_confirmed_key: Mapped[str | None] = mapped_column(KEY)
    request: Mapped[dict[str, Any]]
    dagster_run_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)
    #: When the publishing process last said it is alive, and which process it is.
    heartbeat_at: Mapped[datetime | None]
    owner: Mapped[str | None] = mapped_column(String(255))


class ReplayShard(Base):
    """One contiguous key range of a replay, published by one step with its own progress:
    ``(start_after, stop_at]``; a resume starts after ``last_confirmed_key``."""

    __tablename__ = "replay_shards"

    replay_id: Mapped[str] = mapped_column(ForeignKey("replays.replay_id"), primary_key=True)
    shard: Mapped[int] = mapped_column(Integer, primary_key=True)
    start_after: Mapped[str | None] = mapped_column(KEY)
    stop_at: Mapped[str] = mapped_column(KEY)
    first_key: Mapped[str] = mapped_column(KEY)
    total: Mapped[int] = mapped_column(Integer)
    bytes_total: Mapped[int] = mapped_column(BigInteger)
    confirmed: Mapped[int] = mapped_column(Integer, default=0)
    bytes_confirmed: Mapped[int] = mapped_column(BigInteger, default=0)
    last_confirmed_key: Mapped[str | None] = mapped_column(KEY)
    state: Mapped[str] = mapped_column(String(32))
    updated_at: Mapped[datetime]
    error: Mapped[str | None] = mapped_column(Text)


class Recovery(Base):
    """One recovery attempt; the primary key makes a second claim of the same attempt fail."""

    __tablename__ = "recoveries"

    execution_id: Mapped[str] = mapped_column(ForeignKey("executions.id"), primary_key=True)
    attempt: Mapped[int] = mapped_column(Integer, primary_key=True)
    failure_count: Mapped[int] = mapped_column(Integer)
    restart_route: Mapped[str] = mapped_column(ID)
    restart_stage: Mapped[str] = mapped_column(ID)
    init_message_id: Mapped[str] = mapped_column(String(255))
    state: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str | None] = mapped_column(Text)
    requested_by: Mapped[str | None] = mapped_column(String(255))
    dagster_run_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime]
    error: Mapped[str | None] = mapped_column(Text)


class Event(Base):
    """The change log sensors follow with a cursor; ``seq`` only grows, in commit order."""

    __tablename__ = "execution_events"
    __table_args__ = (Index("ix_execution_events_kind_seq", "kind", "seq"),)

    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    execution_id: Mapped[str] = mapped_column(ID, index=True)
    kind: Mapped[str] = mapped_column(String(32))
    status: Mapped[str | None] = mapped_column(String(32))
    route: Mapped[str | None] = mapped_column(ID)
    stage: Mapped[str | None] = mapped_column(ID)
    at: Mapped[datetime]
    data: Mapped[dict[str, Any] | None]


class Counter(Base):
    """Named counters per execution (the sample ``fetch`` stage counts its source reads here)."""

    __tablename__ = "counters"

    execution_id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)
