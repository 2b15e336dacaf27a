"""An execution store per test, on SQLite and on a real PostgreSQL cluster."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.snapshots import SNAPSHOT

from factflow_replay_dagster.executions import ExecutionStore
from factflow_replay_dagster.snapshot import ConfigSnapshot

_databases = itertools.count()


@pytest.fixture
def snapshot() -> ConfigSnapshot:
    return ConfigSnapshot.parse(SNAPSHOT)


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'executions.db'}"
    server = request.getfixturevalue("postgres_server")
    return str(server.create_database(f"store_{next(_databases)}"))


@pytest.fixture
def store(store_url: str) -> Iterator[ExecutionStore]:
    with ExecutionStore(store_url) as opened:
        yield opened
