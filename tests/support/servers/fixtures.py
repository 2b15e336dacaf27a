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


def serving(server: _Server) -> Iterator[_Server]:
    """Start ``server``, yield it, stop it whatever happened: a fixture's body is
    ``yield from serving(Server(...))``."""
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def rabbitmq_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitMQServer]:
    """A private RabbitMQ node for the whole session (``.url`` is an ``amqp://`` URL)."""
    from .rabbitmq import RabbitMQServer

    yield from serving(RabbitMQServer(tmp_path_factory.mktemp("rabbitmq")))


@pytest.fixture(scope="session")
def seaweedfs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFSServer]:
    """A SeaweedFS server with its S3 gateway (``.endpoint_url``) for the whole session."""
    from .seaweedfs import SeaweedFSServer

    yield from serving(SeaweedFSServer(tmp_path_factory.mktemp("seaweedfs")))


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    """A private PostgreSQL cluster for the whole session (``.url(db)`` gives SQLAlchemy URLs)."""
    from .postgres import PostgresServer

    yield from serving(PostgresServer(tmp_path_factory.mktemp("postgres")))
