"""Dagster in its production shape, on loopback: a code server, a webserver and a daemon.

The three processes a Kubernetes deployment runs as pods (the user code deployment's
``dagster api grpc``, ``dagster-webserver``, ``dagster-daemon run``), here as processes
sharing one ``DAGSTER_HOME`` whose ``dagster.yaml`` is the instance file given, verbatim.
Whatever that file reads from the environment (``env:``) comes from ``env``.
"""

from __future__ import annotations

__all__ = ["DagsterDeployment", "dagster_database"]

import os
import secrets
import shutil
import signal
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ._proc import ServerProcess, ServerStartError, free_port, tcp_open
from .dagster_dev import graphql, locations_loaded, restore_sigint
from .postgres import PostgresServer

#: The code location module the Helm values give the user code deployment.
LOCATION_MODULE = "factflow_replay_dagster.defs.location"
LOCATION_NAME = "factflow"
#: Daemons that must be beating before runs are submitted.
_DAEMONS = ("QUEUED_RUN_COORDINATOR", "SENSOR", "MONITORING")


def dagster_database(postgres: PostgresServer, name: str) -> dict[str, str]:
    """A database and login role of their own for Dagster's storage on ``postgres``, as the
    ``DAGSTER_POSTGRES_*`` variables the production profile reads."""
    if not name.replace("_", "").isalnum():
        raise ValueError(f"test database names are plain identifiers, not {name!r}")
    password = secrets.token_hex(8)  # the test cluster trusts loopback; passed all the same
    postgres.psql(f"CREATE ROLE {name} LOGIN PASSWORD '{password}'")
    postgres.psql(f'CREATE DATABASE "{name}" OWNER {name}')
    return {
        "DAGSTER_POSTGRES_HOSTNAME": "127.0.0.1",
        "DAGSTER_POSTGRES_PORT": str(postgres.port),
        "DAGSTER_POSTGRES_DB": name,
        "DAGSTER_POSTGRES_USER": name,
        "DAGSTER_POSTGRES_PASSWORD": password,
    }


def _tool(name: str) -> str:
    return shutil.which(name) or str(Path(sys.executable).with_name(name))


class DagsterDeployment:
    """A code server, a webserver and a daemon on free loopback ports, with ``instance`` as
    their ``dagster.yaml``; :meth:`stop` ends them (and the runs they started)."""

    def __init__(self, instance: Path, *, base_dir: Path, env: Mapping[str, str]) -> None:
        self.instance = instance
        self.base_dir = base_dir
        self.home = base_dir / "dagster_home"
        self.env = dict(env)
        self.port = 0
        self.code_port = 0
        self._processes: list[ServerProcess] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start the three processes; :meth:`wait_ready` waits for them."""
        self.home.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.instance, self.home / "dagster.yaml")
        self.code_port = free_port()
        self.port = free_port()
        workspace = self.base_dir / "workspace.yaml"
        workspace.write_text(
            "load_from:\n  - grpc_server:\n      host: 127.0.0.1\n"
            f"      port: {self.code_port}\n      location_name: {LOCATION_NAME}\n"
        )
        env = {**os.environ, **self.env, "DAGSTER_HOME": str(self.home)}
        commands = {
            "code server": [
                _tool("dagster"),
                *("api", "grpc", "-m", LOCATION_MODULE, "-h", "127.0.0.1"),
                *("-p", str(self.code_port), "--location-name", LOCATION_NAME),
            ],
            "webserver": [
                _tool("dagster-webserver"),
                *("-w", str(workspace), "-h", "127.0.0.1", "-p", str(self.port)),
            ],
            "daemon": [_tool("dagster-daemon"), "run", "-w", str(workspace)],
        }
        for name, argv in commands.items():
            process = ServerProcess(
                f"dagster {name}",
                argv,
                log_path=self.base_dir / f"{name.replace(' ', '-')}.log",
                env=env,
                cwd=self.base_dir,
                preexec_fn=restore_sigint,
            )
            process.start()
            self._processes.append(process)

    def wait_ready(self, *, timeout: float = 180.0) -> None:
        """Until the webserver has loaded the code location and the daemons are beating."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for process in self._processes:
                if not process.running():
                    raise process.fail("exited during start-up")
            if tcp_open(self.port) and locations_loaded(self.url) and self._daemons_healthy():
                return
            time.sleep(0.5)
        raise ServerStartError(f"not ready within {timeout:.0f} s:\n{self.log_tail()}")

    def _daemons_healthy(self) -> bool:
        data = self.graphql(
            "{ instance { daemonHealth { allDaemonStatuses { daemonType healthy } } } }"
        )
        statuses = data["instance"]["daemonHealth"]["allDaemonStatuses"]
        healthy = {s["daemonType"] for s in statuses if s["healthy"]}
        return all(daemon in healthy for daemon in _DAEMONS)

    def graphql(self, query: str, variables: Mapping[str, Any] | None = None) -> Any:
        return graphql(self.url, query, variables)

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(f"--- {p.name}:\n{p.log_tail(lines)}" for p in self._processes)

    def stop(self) -> None:
        """The daemon first (it launches nothing more), then the webserver, then the code
        server and the run processes it started (its process group)."""
        stopping = list(reversed(self._processes))
        for process in stopping:  # all asked at once, so their shutdowns overlap
            process.signal_group(signal.SIGTERM)
        for process in stopping:
            process.stop(sig=signal.SIGTERM, timeout=20)
        self._processes.clear()
