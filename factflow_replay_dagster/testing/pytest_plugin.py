"""Session fixtures that start real RabbitMQ, SeaweedFS (S3) and PostgreSQL servers on free ports.

A server that cannot start is an error, never a skip: the suite proves the real components.
Enable with ``pytest_plugins = ["factflow_replay_dagster.testing.pytest_plugin"]``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .postgres import PostgresServer
    from .rabbitmq import RabbitMQServer
    from .seaweedfs import SeaweedFSServer


@pytest.fixture(scope="session")
def rabbitmq_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitMQServer]:
    """A private RabbitMQ node for the whole session (``.url`` is an ``amqp://`` URL)."""
    from .rabbitmq import RabbitMQServer

    server = RabbitMQServer(tmp_path_factory.mktemp("rabbitmq"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def seaweedfs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFSServer]:
    """A SeaweedFS server with its S3 gateway (``.endpoint_url``) for the whole session."""
    from .seaweedfs import SeaweedFSServer

    server = SeaweedFSServer(tmp_path_factory.mktemp("seaweedfs"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    """A private PostgreSQL cluster for the whole session (``.url(db)`` gives SQLAlchemy URLs)."""
    from .postgres import PostgresServer

    server = PostgresServer(tmp_path_factory.mktemp("postgres"))
    server.start()
    try:
        yield server
    finally:
        server.stop()
