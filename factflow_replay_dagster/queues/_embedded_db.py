"""The SQLite file under the embedded queue: connections, durability pragmas and the schema."""

from __future__ import annotations

__all__ = [
    "BUSY_TIMEOUT_MS",
    "SCHEMA_VERSION",
    "Connection",
    "connect",
    "ensure_schema",
    "write_transaction",
]

import contextlib
import logging
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

from factflow_replay_dagster.errors import QueueError

logger = logging.getLogger(__name__)

#: How long a connection waits for another process's write transaction before failing.
BUSY_TIMEOUT_MS = 30_000

#: Bumped with every schema change; :data:`_MIGRATIONS` maps each version to its upgrade.
SCHEMA_VERSION = 1

_SCHEMA_V1 = """
CREATE TABLE IF NOT EXISTS queues (
    name        TEXT PRIMARY KEY,
    created_at  REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    queue           TEXT NOT NULL REFERENCES queues (name),
    message_id      TEXT NOT NULL,
    body            BLOB NOT NULL,
    headers         TEXT NOT NULL,
    content_type    TEXT NOT NULL,
    type            TEXT NOT NULL,
    enqueued_at     REAL NOT NULL,
    delivery_count  INTEGER NOT NULL DEFAULT 0,
    lease_token     TEXT,
    leased_until    REAL
);
-- Claims scan one queue in FIFO order and test the lease from the index alone.
CREATE INDEX IF NOT EXISTS messages_by_queue ON messages (queue, seq, leased_until);
CREATE TABLE IF NOT EXISTS dead (
    seq             INTEGER PRIMARY KEY,
    queue           TEXT NOT NULL,
    message_id      TEXT NOT NULL,
    body            BLOB NOT NULL,
    headers         TEXT NOT NULL,
    content_type    TEXT NOT NULL,
    type            TEXT NOT NULL,
    enqueued_at     REAL NOT NULL,
    delivery_count  INTEGER NOT NULL,
    dead_at         REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS dead_by_queue ON dead (queue, seq);
"""


def _migrate_0_to_1(conn: sqlite3.Connection) -> None:
    for statement in _SCHEMA_V1.split(";"):
        if statement.strip():
            conn.execute(statement)


#: ``version -> upgrade to version + 1``; each runs inside the schema's write transaction.
_MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {0: _migrate_0_to_1}


class Connection(sqlite3.Connection):
    """A plain connection that can be weakly referenced (the C type cannot).

    The queue tracks its threads' connections weakly, so a finished thread's connection is
    closed when the thread goes, and :meth:`EmbeddedQueue.close` closes the rest.
    """


def connect(path: Path, broker: str) -> Connection:
    """Open ``path`` in autocommit mode with WAL, ``synchronous=FULL`` and a busy timeout.

    Autocommit (``isolation_level=None``) leaves every transaction to
    :func:`write_transaction`, so each write is one explicit ``BEGIN IMMEDIATE``.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            path,
            timeout=BUSY_TIMEOUT_MS / 1000,
            isolation_level=None,
            check_same_thread=False,  # only so close() may close other threads' connections
            factory=Connection,
        )
    except (OSError, sqlite3.Error) as exc:
        raise QueueError(f"cannot open the embedded queue {broker}: {exc}") from exc
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        mode = str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0])
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
    except sqlite3.Error as exc:
        conn.close()
        raise QueueError(f"cannot configure the embedded queue {broker}: {exc}") from exc
    if mode.lower() != "wal":
        conn.close()
        raise QueueError(
            f"the embedded queue {broker} cannot use WAL journaling (got {mode!r}); "
            "put the file on a local file system"
        )
    return conn


@contextlib.contextmanager
def write_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``, rolled back if the body raises.

    Taking the write lock up front means two processes never deadlock upgrading a read
    transaction; a waiting writer is handled by the busy timeout.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        # Re-raised below: this only undoes the transaction, it swallows nothing.
        if conn.in_transaction:
            conn.rollback()
        raise
    conn.execute("COMMIT")


def ensure_schema(conn: sqlite3.Connection, broker: str) -> None:
    """Create or upgrade the schema to :data:`SCHEMA_VERSION`; idempotent, safe across processes."""
    try:
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if version == SCHEMA_VERSION:
            return
        with write_transaction(conn):
            # Read again under the write lock: another process may have just created it.
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            if version > SCHEMA_VERSION:
                raise QueueError(
                    f"the embedded queue {broker} has schema version {version}, newer than "
                    f"this package understands ({SCHEMA_VERSION}); upgrade the package"
                )
            while version < SCHEMA_VERSION:
                _MIGRATIONS[version](conn)
                version += 1
                conn.execute(f"PRAGMA user_version = {version}")
                logger.info("embedded queue %s: schema upgraded to version %d", broker, version)
    except sqlite3.Error as exc:
        raise QueueError(f"cannot create the schema of the embedded queue {broker}: {exc}") from exc
