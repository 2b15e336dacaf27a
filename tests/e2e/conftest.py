"""End-to-end tests on real RabbitMQ, SeaweedFS (S3) and PostgreSQL, and on embedded defaults."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.environments import server_env

from factflow_replay_dagster.connect import Components, connect
from factflow_replay_dagster.settings import Settings


@pytest.fixture
def servers(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    return server_env(request, tmp_path, monkeypatch)


@pytest.fixture
def components(servers: dict[str, str]) -> Iterator[Components]:
    with connect(Settings.from_env(servers)) as opened:
        yield opened
