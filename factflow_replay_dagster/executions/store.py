"""The execution store: executions, lineage, replays and recoveries in one SQL database."""

from __future__ import annotations

__all__ = ["ExecutionStore"]

from ._recoveries import RecoveriesMixin
from ._shards import ShardsMixin


class ExecutionStore(ShardsMixin, RecoveriesMixin):
    """SQLAlchemy 2 store; SQLite file by default, PostgreSQL by URL; migrated by Alembic.

    Safe for concurrent writers in several processes: SQLite runs in WAL mode with
    ``BEGIN IMMEDIATE``; state changes are conditional updates inside one transaction; the
    change log commits in ``seq`` order (see :meth:`StoreBase._tx`).

    >>> store = ExecutionStore("sqlite:///state/executions.db")  # doctest: +SKIP
    """
