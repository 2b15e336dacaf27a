"""Start and stop the real servers the tests use: free loopback ports, waiting, stopping by pid."""

from __future__ import annotations

__all__ = [
    "Account",
    "ServerProcess",
    "ServerStartError",
    "as_account",
    "free_port",
    "tcp_open",
    "wait_until",
]

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypedDict

#: A (uid, gid) to run a process as; None runs it as ourselves.
Account = tuple[int, int] | None


class ServerStartError(RuntimeError):
    """A test server did not start; the message ends with the tail of its log."""


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(*, also_free: Sequence[int] = (), below: int = 55000) -> int:
    """A loopback TCP port that is free now, and whose ``port + n`` for n in ``also_free`` are too.

    SeaweedFS takes ``port + 10000`` for gRPC, hence ``also_free=(10000,)``. Ports come from a
    range below ``below`` chosen by the OS and then checked, so concurrent sessions rarely clash.
    """
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port >= below:
            port = 20000 + port % (below - 20000 - max(also_free, default=0))
        if _port_is_free(port) and all(_port_is_free(port + n) for n in also_free):
            return port
    raise ServerStartError("no free loopback port found")


def wait_until(check: Callable[[], bool], *, timeout: float, interval: float = 0.1) -> bool:
    """Poll ``check`` until it returns True or ``timeout`` seconds pass.

    Exceptions from ``check`` count as "not yet", except :class:`ServerStartError`, which
    ``check`` raises to give up at once (the server process exited).
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return True
        except ServerStartError:
            raise
        except Exception:
            pass
        time.sleep(interval)
    return False


def tcp_open(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


class AccountArgs(TypedDict, total=False):
    user: int
    group: int
    extra_groups: list[int]


def as_account(account: Account) -> AccountArgs:
    """``subprocess`` keyword arguments that run the child as ``account`` (no extra groups)."""
    if account is None:
        return AccountArgs()
    uid, gid = account
    return AccountArgs(user=uid, group=gid, extra_groups=[])


class ServerProcess:
    """A server started in its own process group, logging to a file, stopped by pid;
    as another user when given an ``account`` (RabbitMQ drops root for its service user)."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        log_path: Path,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        account: Account = None,
        preexec_fn: Callable[[], None] | None = None,
    ) -> None:
        self.name = name
        self.preexec_fn = preexec_fn
        self.argv = list(argv)
        self.log_path = log_path
        self.env = env
        self.cwd = cwd
        self.account = account
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        try:
            self.proc = subprocess.Popen(
                self.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
                preexec_fn=self.preexec_fn,  # noqa: PLW1509 - it only resets a signal handler
                **as_account(self.account),
            )
        finally:
            log.close()

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise ServerStartError(f"{self.name} was never started")
        return self.proc.pid

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def fail(self, reason: str) -> ServerStartError:
        return ServerStartError(f"{self.name} {reason}; log {self.log_path}:\n{self.log_tail()}")

    def signal_group(self, sig: int) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)

    def stop(self, *, timeout: float = 15.0, sig: int = signal.SIGTERM) -> None:
        """Signal the whole process group, wait, then SIGKILL what is left."""
        if self.proc is None:
            return
        self.signal_group(sig)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.signal_group(signal.SIGKILL)
            self.proc.wait(timeout=10)
        # Children that left the group's leader behind are still in the group.
        self.signal_group(signal.SIGKILL)

    def kill(self) -> None:
        """SIGKILL the process group at once (a crash, for fault tests)."""
        if self.proc is None:
            return
        self.signal_group(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
