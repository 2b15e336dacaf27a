"""Engines for the execution store: SQLite safe for several processes, or PostgreSQL by URL."""

from __future__ import annotations

__all__ = [
    "SCHEMA_HEAD",
    "create_store_engine",
    "current_revision",
    "downgrade",
    "migrate",
]

import contextlib
import fcntl
import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from ..errors import SettingsError
from ..redaction import redact_url, shown_url

if TYPE_CHECKING:
    from alembic.config import Config

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).with_name("migrations")
#: The newest migration; a test checks it is Alembic's head. Opening a store at this
#: revision skips importing Alembic at all (it costs most of a second).
SCHEMA_HEAD = "0004"
#: Seconds a PostgreSQL connection attempt may take.
_CONNECT_TIMEOUT = 10
#: PostgreSQL advisory lock keys (arbitrary constants, unique to this package).
MIGRATION_LOCK = 0x46465244_0001
EVENT_LOCK = 0x46465244_0002


def _sqlite_pragmas(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
    # Autocommit at the driver level: SQLAlchemy's "begin" event below emits the BEGIN itself.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_begin(conn: Any) -> None:
    # Writers take the write lock up front (IMMEDIATE): two processes never deadlock
    # upgrading a read lock, they queue on busy_timeout instead. Readers (marked with the
    # ``factflow_read`` execution option) take no lock and never wait for a writer in WAL.
    read_only = conn.get_execution_options().get("factflow_read", False)
    conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def create_store_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite files get WAL, FULL sync, a busy timeout, BEGIN IMMEDIATE."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
        raise SettingsError(
            f"FACTFLOW_DATABASE_URL is not a SQLAlchemy URL: {shown_url(url)}"
        ) from None
    try:
        return _engine(parsed)
    except (ArgumentError, ImportError) as exc:  # no such dialect, driver or driver package
        raise SettingsError(
            f"FACTFLOW_DATABASE_URL names a database this package cannot open "
            f"({type(exc).__name__}): {shown_url(url)}"
        ) from None


def _engine(parsed: URL) -> Engine:
    """The engine for a parsed URL (its dialect and driver are loaded here)."""
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        # A small pool: the pragmas run once per connection, not once per transaction.
        engine = create_engine(parsed, pool_size=4, max_overflow=8, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    # A database that stops answering (rather than refusing) fails a save within seconds,
    # not when the operating system gives up on the connection (unless the URL says).
    postgres = parsed.get_backend_name() == "postgresql"
    timeout = postgres and "connect_timeout" not in parsed.query
    connect_args = {"connect_timeout": _CONNECT_TIMEOUT} if timeout else {}
    return create_engine(
        parsed, pool_pre_ping=True, pool_size=5, max_overflow=5, connect_args=connect_args
    )


@contextlib.contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    """Serialise migrations of one database across processes."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK})
            conn.commit()
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK})
                conn.commit()
        return
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        yield
        return
    lock_path = Path(database).expanduser().with_name(Path(database).name + ".migrate.lock")
    with lock_path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def current_revision(engine: Engine) -> str | None:
    """The schema revision recorded in the database, or None for an empty database."""
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def alembic_config(engine: Engine | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if engine is not None:
        config.attributes["engine"] = engine
    return config


def migrate(engine: Engine, revision: str = "head") -> None:
    """Upgrade the schema to ``revision`` (idempotent; safe from several processes at once)."""
    if revision == "head" and current_revision(engine) == SCHEMA_HEAD:
        return
    from alembic import command

    with _migration_lock(engine):
        command.upgrade(alembic_config(engine), revision)
    log.debug("execution store at %s migrated to %s", redact_url(str(engine.url)), revision)


def downgrade(engine: Engine, revision: str) -> None:
    """Downgrade the schema to ``revision`` (``base`` drops every table of the store)."""
    from alembic import command

    with _migration_lock(engine):
        command.downgrade(alembic_config(engine), revision)
