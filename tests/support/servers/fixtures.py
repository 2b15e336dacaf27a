"""Session fixtures that start real RabbitMQ, SeaweedFS (S3) and PostgreSQL servers on free ports.

A server that cannot start is an error, never a skip: the suite proves the real components.
``tests/conftest.py`` enables them with ``pytest_plugins = ["support.servers.fixtures"]``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Protocol, TypeVar

import pytest

if TYPE_CHECKING:
    from .postgres import PostgresServer
    from .rabbitmq import RabbitMQServer
    from .seaweedfs import SeaweedFSServer


class _Startable(Protocol):
    def start(self) -> None: ...
    def stop(self) -> None: ...


_Server = TypeVar("_Server", bound=_Startable)


def _serving(server: _Server) -> Iterator[_Server]:
    """Start ``server`` for the session and stop it at the end, whatever happened."""
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def rabbitmq_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitMQServer]:
    """A private RabbitMQ node for the whole session (``.url`` is an ``amqp://`` URL)."""
    from .rabbitmq import RabbitMQServer

    yield from _serving(RabbitMQServer(tmp_path_factory.mktemp("rabbitmq")))


@pytest.fixture(scope="session")
def seaweedfs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFSServer]:
    """A SeaweedFS server with its S3 gateway (``.endpoint_url``) for the whole session."""
    from .seaweedfs import SeaweedFSServer

    yield from _serving(SeaweedFSServer(tmp_path_factory.mktemp("seaweedfs")))


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    """A private PostgreSQL cluster for the whole session (``.url(db)`` gives SQLAlchemy URLs)."""
    from .postgres import PostgresServer

    yield from _serving(PostgresServer(tmp_path_factory.mktemp("postgres")))
