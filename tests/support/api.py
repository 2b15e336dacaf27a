"""The HTTP API as a real server process (``factflow-replay api``) for tests, and a Dagster
home whose runs launch at once (DefaultRunCoordinator: no daemon needed)."""

from __future__ import annotations

__all__ = [
    "AUTH",
    "TOKENS",
    "ApiServer",
    "dagster_home_launching_at_once",
    "read_events",
    "wait_for_run",
]

import json
import os
import signal
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg
import httpx

from .servers._proc import ServerProcess, ServerStartError, free_port, wait_until

#: Two tokens, as during a rotation; either is accepted.
TOKENS = ("old-token-0123456789abcdef", "new-token-fedcba9876543210")
AUTH = {"Authorization": f"Bearer {TOKENS[1]}"}

_LAUNCH_AT_ONCE = """\
telemetry:
  enabled: false
run_coordinator:
  module: dagster._core.run_coordinator
  class: DefaultRunCoordinator
run_launcher:
  module: dagster._core.launcher
  class: DefaultRunLauncher
"""


def dagster_home_launching_at_once(folder: Path) -> Path:
    """A DAGSTER_HOME whose run coordinator launches a submitted run at once, in a process of
    its own (DefaultRunLauncher), as a deployment without a daemon would."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "dagster.yaml").write_text(_LAUNCH_AT_ONCE)
    return folder


class ApiServer:
    """``factflow-replay api`` on a free loopback port, with ``env`` over ours."""

    def __init__(self, env: Mapping[str, str], *, log_path: Path) -> None:
        self.port = free_port()
        self.env = {**os.environ, **env}
        argv = [
            sys.executable,
            "-m",
            "factflow_replay_dagster.cli",
            "api",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
        ]
        self.process = ServerProcess("factflow-replay api", argv, log_path=log_path, env=self.env)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, timeout: float = 60.0) -> ApiServer:
        self.process.start()

        def healthy() -> bool:
            if not self.process.running():
                raise self.process.fail("exited during start-up")
            return httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200

        if not wait_until(healthy, timeout=timeout, interval=0.2):
            self.stop()
            raise ServerStartError(f"the API did not answer:\n{self.process.log_tail()}")
        return self

    def client(self, headers: Mapping[str, str] | None = AUTH) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=dict(headers or {}), timeout=60)

    def log(self) -> str:
        return self.process.log_path.read_text(errors="replace")

    def stop(self) -> None:
        # SIGTERM: uvicorn shuts down, the lifespan stops the code server it started.
        self.process.stop(sig=signal.SIGTERM, timeout=30)


def wait_for_run(home: Path, run_id: str, *, timeout: float = 180.0) -> dg.DagsterRun:
    """The run once finished (SUCCESS, FAILURE or CANCELED)."""
    deadline = time.monotonic() + timeout
    with dg.DagsterInstance.from_config(str(home)) as instance:
        while time.monotonic() < deadline:
            run = instance.get_run_by_id(run_id)
            if run is not None and run.is_finished:
                return run
            time.sleep(0.3)
    raise AssertionError(f"run {run_id} did not finish within {timeout} s")


def read_events(client: httpx.Client, url: str, *, timeout: float = 180.0) -> list[dict[str, Any]]:
    """Every server-sent event of ``url`` until the stream ends: ``{"event", "data"}``."""
    events: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    with client.stream("GET", url, timeout=timeout) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if not line:
                if "event" in current:
                    events.append(current)
                current = {}
            elif line.startswith("event: "):
                current["event"] = line.removeprefix("event: ")
            elif line.startswith("data: "):
                current["data"] = json.loads(line.removeprefix("data: "))
    return events
