"""Reference-runtime workers in their own processes, for tests that kill and restart them."""

from __future__ import annotations

__all__ = ["WorkerProcess"]

import os
import signal
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from ._proc import ServerProcess


class WorkerProcess:
    """``factflow-replay worker CONFIG...`` in a child process with its own environment."""

    def __init__(
        self,
        configs: Sequence[Path],
        *,
        env: Mapping[str, str],
        log_path: Path,
        prefetch: int = 4,
    ) -> None:
        argv = [
            sys.executable,
            "-m",
            "factflow_replay_dagster.cli",
            "-v",
            "worker",
            "--prefetch",
            str(prefetch),
            *map(str, configs),
        ]
        self._process = ServerProcess(
            "factflow worker", argv, log_path=log_path, env={**os.environ, **env}
        )

    def start(self) -> WorkerProcess:
        self._process.start()
        return self

    def running(self) -> bool:
        return self._process.running()

    def kill(self) -> None:
        """SIGKILL: a crash in the middle of whatever it was doing."""
        self._process.kill()

    def stop(self) -> None:
        """SIGTERM: the worker finishes its current message and exits."""
        self._process.stop(sig=signal.SIGTERM, timeout=30)

    def log_tail(self) -> str:
        return self._process.log_tail()
