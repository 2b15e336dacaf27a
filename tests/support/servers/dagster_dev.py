"""A real ``dagster dev`` (webserver and daemon) for end-to-end tests over GraphQL and a browser."""

from __future__ import annotations

__all__ = ["DagsterDev", "graphql", "locations_loaded", "restore_sigint"]

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from ._proc import ServerStartError, free_port, tcp_open


def restore_sigint() -> None:
    """``preexec_fn`` for Dagster's processes: started from a non-interactive parent they
    would ignore SIGINT (and so SIGTERM, which Dagster turns into SIGINT)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def graphql(url: str, query: str, variables: Mapping[str, Any] | None = None) -> Any:
    """The ``data`` of a GraphQL query to the webserver at ``url``."""
    body = json.dumps({"query": query, "variables": dict(variables or {})}).encode()
    request = urllib.request.Request(
        f"{url}/graphql", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())["data"]


def locations_loaded(url: str) -> bool:
    """Whether the webserver at ``url`` answers and has loaded every code location."""
    try:
        data = graphql(
            url,
            "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus "
            "locationOrLoadError { __typename } } } } }",
        )
    except OSError:
        return False
    entries = data["workspaceOrError"]["locationEntries"]
    return bool(entries) and all(
        e["loadStatus"] == "LOADED"
        and e["locationOrLoadError"]["__typename"] == "RepositoryLocation"
        for e in entries
    )


class DagsterDev:
    """``dagster dev -w WORKSPACE`` on a free loopback port with its own DAGSTER_HOME."""

    def __init__(self, workspace: Path, *, base_dir: Path, env: Mapping[str, str]) -> None:
        self.workspace = workspace
        self.base_dir = base_dir
        self.home = base_dir / "dagster_home"
        self.env = dict(env)
        self.port = 0
        self.log_path = base_dir / "dagster-dev.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, timeout: float = 120.0) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        template = resources.files("factflow_replay_dagster.defs").joinpath("dagster_instance.yaml")
        (self.home / "dagster.yaml").write_text(template.read_text(encoding="utf-8"))
        self.port = free_port()
        dagster = shutil.which("dagster") or str(Path(sys.executable).with_name("dagster"))
        env = {**os.environ, **self.env, "DAGSTER_HOME": str(self.home)}
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                [
                    dagster,
                    "dev",
                    "-w",
                    str(self.workspace),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                ],
                cwd=self.workspace.parent,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=restore_sigint,  # noqa: PLW1509 - before any thread starts here
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise self._failure("exited during start-up")
            if tcp_open(self.port) and self._location_loaded():
                return
            time.sleep(0.5)
        self.stop()
        raise self._failure(f"did not load its code location within {timeout:.0f} s")

    def graphql(self, query: str, variables: Mapping[str, Any] | None = None) -> Any:
        return graphql(self.url, query, variables)

    def _location_loaded(self) -> bool:
        return locations_loaded(self.url)

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def _failure(self, reason: str) -> ServerStartError:
        return ServerStartError(f"dagster dev {reason}; log {self.log_path}:\n{self.log_tail()}")

    def stop(self) -> None:
        """SIGINT to the process group (dagster dev's own shutdown), then SIGKILL what is left."""
        if self._proc is None:
            return
        for sig, wait in ((signal.SIGINT, 20.0), (signal.SIGKILL, 10.0)):
            try:
                os.killpg(self._proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                self._proc.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                continue
        with contextlib.suppress(ProcessLookupError):  # children that outlived the leader
            os.killpg(self._proc.pid, signal.SIGKILL)
        self._proc = None
