"""The command line on a pseudo-terminal, read as it runs: what a person at a terminal sees,
and the process's own CPU time (to tell waiting from spinning)."""

from __future__ import annotations

__all__ = ["TerminalProcess"]

import os
import pty
import re
import subprocess
import sys
import threading
import time
from pathlib import Path


class TerminalProcess:
    """``factflow-replay ARGS`` with stdin, stdout and stderr on a pseudo-terminal (so the
    progress bar is drawn); a thread reads everything it shows into :attr:`shown`."""

    def __init__(self, args: list[str], env: dict[str, str], *, columns: int = 140) -> None:
        leader, follower = pty.openpty()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "factflow_replay_dagster.cli", *args],
            stdin=follower,
            stdout=follower,
            stderr=follower,
            env={**os.environ, **env, "TERM": "xterm", "COLUMNS": str(columns)},
            close_fds=True,
        )
        os.close(follower)
        self._leader = leader
        self._chunks: list[str] = []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self._leader, 65536)
            except OSError:  # the follower side closed: the process is gone
                return
            if not data:
                return
            with self._lock:
                self._chunks.append(data.decode(errors="replace"))

    @property
    def shown(self) -> str:
        """Everything shown so far (line ends as the terminal got them: ``\\r\\n``)."""
        with self._lock:
            return "".join(self._chunks)

    def wait_for(self, pattern: str, *, timeout: float) -> re.Match[str]:
        """The first match of ``pattern`` in what is shown; fail (with the screen's tail) if
        the process ends or ``timeout`` passes first. A liveness bound, not a timing claim."""
        compiled = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = compiled.search(self.shown)
            if found is not None:
                return found
            if self.process.poll() is not None:
                self._reader.join(5)
                found = compiled.search(self.shown)
                if found is not None:
                    return found
                break
            time.sleep(0.05)
        raise AssertionError(f"{pattern!r} never shown; the screen ends:\n{self.shown[-3000:]}")

    def cpu_seconds(self) -> float:
        """User and system CPU time the process (all its threads) has used so far."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks

    def wait(self, timeout: float) -> int:
        """Wait for the process to end; its exit code (and everything it showed is read)."""
        code = self.process.wait(timeout=timeout)
        self._reader.join(10)
        os.close(self._leader)
        return code

    def kill(self) -> None:
        """End the process if it still runs (a failed test's clean-up)."""
        if self.process.poll() is None:
            self.process.kill()
            self.wait(30)
