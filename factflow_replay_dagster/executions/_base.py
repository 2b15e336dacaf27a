"""Transactions and the change log shared by every part of the execution store."""

from __future__ import annotations

__all__ = ["StoreBase"]

import contextlib
import logging
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select, text
from sqlalchemy.exc import DataError, DBAPIError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm import Session, sessionmaker

from .._closing import Closing
from ..errors import ExecutionStoreError, UnknownExecutionError
from ..redaction import redact_url
from .engine import EVENT_LOCK, create_store_engine, downgrade, migrate
from .models import Event, Execution, utcnow

log = logging.getLogger("factflow_replay_dagster.executions")


def _unavailable(exc: SQLAlchemyError) -> bool:
    """Whether ``exc`` says the database is unreachable or went away (refused, shut down, a
    connection SQLAlchemy found dropped, none free in the pool): an ``ExecutionStoreError``.
    Errors of the statements themselves (an ``IntegrityError`` a caller turns into its own
    refusal) are not."""
    if isinstance(exc, OperationalError | PoolTimeoutError):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


class StoreBase(Closing):
    """Holds the engine; every public store method runs in one :meth:`_tx` transaction."""

    def __init__(self, url: str, *, auto_migrate: bool = True) -> None:
        self.url = redact_url(url)
        self._engine: Engine = create_store_engine(url)
        self._sessions = sessionmaker(self._engine, expire_on_commit=False)
        reader = self._engine.execution_options(factflow_read=True)
        self._read_sessions = sessionmaker(reader, expire_on_commit=False)
        if auto_migrate:
            self.migrate()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"

    @property
    def dialect(self) -> str:
        return self._engine.dialect.name

    def migrate(self, revision: str = "head") -> None:
        """Bring the schema to ``revision`` with Alembic (idempotent, process-safe)."""
        try:
            migrate(self._engine, revision)
        except (SQLAlchemyError, OSError) as exc:
            raise ExecutionStoreError(
                f"cannot migrate execution store at {self.url}: {_describe(exc)}"
            ) from None

    def downgrade(self, revision: str) -> None:
        """Downgrade the schema (for operators rolling back a release; ``base`` drops all)."""
        try:
            downgrade(self._engine, revision)
        except (SQLAlchemyError, OSError) as exc:
            raise ExecutionStoreError(
                f"cannot downgrade execution store at {self.url}: {_describe(exc)}"
            ) from None

    def close(self) -> None:
        self._engine.dispose()

    @contextlib.contextmanager
    def _tx(self, *, events: bool = False, read: bool = False) -> Iterator[Session]:
        """One transaction; with ``events``, the change-log lock is taken first; ``read``
        transactions must not write (on SQLite they take no write lock).

        On PostgreSQL the advisory lock makes change-log rows commit in ``seq`` order, so a
        sensor's cursor never skips a row that commits late. It is taken before any row lock,
        so it cannot deadlock with them. SQLite's BEGIN IMMEDIATE already serialises writers.
        """
        try:
            sessions = self._read_sessions if read else self._sessions
            with sessions.begin() as session:
                if events and self.dialect == "postgresql":
                    session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": EVENT_LOCK})
                yield session
        except DataError as exc:  # a value the database cannot keep (PostgreSQL: a NUL in
            # text, a key longer than its column), whatever the entry point checked
            raise ExecutionStoreError(
                f"execution store at {self.url} refused a value: {_describe(exc)}"
            ) from None
        except SQLAlchemyError as exc:
            if not _unavailable(exc):
                raise
            raise ExecutionStoreError(
                f"execution store at {self.url} failed: {_describe(exc)}"
            ) from None

    @staticmethod
    def _emit(
        session: Session,
        execution_id: str,
        kind: str,
        *,
        status: str | None = None,
        route: str | None = None,
        stage: str | None = None,
        data: dict[str, Any] | None = None,
        at: datetime | None = None,
    ) -> None:
        session.add(
            Event(
                execution_id=execution_id,
                kind=kind,
                status=status,
                route=route,
                stage=stage,
                at=at or utcnow(),
                data=data,
            )
        )

    @staticmethod
    def _execution_row(session: Session, execution_id: str, *, lock: bool = False) -> Execution:
        query = select(Execution).where(Execution.id == execution_id)
        if lock:
            query = query.with_for_update()
        row = session.scalars(query).one_or_none()
        if row is None:
            raise UnknownExecutionError(execution_id)
        return row


def _describe(exc: BaseException) -> str:
    """The driver's message without the SQL statement or parameters (they can hold data)."""
    original = getattr(exc, "orig", None)
    return str(original or exc).splitlines()[0]
