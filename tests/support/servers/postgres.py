"""A private PostgreSQL cluster for tests: ``initdb`` in a temporary folder, on a free port."""

from __future__ import annotations

__all__ = ["PostgresServer", "find_postgres_bindir"]

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from ._proc import ServerProcess, ServerStartError, free_port, tcp_open, wait_until


def find_postgres_bindir() -> Path:
    """The newest ``/usr/lib/postgresql/<version>/bin`` (Debian's layout), or ``initdb`` on PATH."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0,
    )
    if candidates:
        return candidates[-1].parent
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    raise ServerStartError(
        "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): "
        "`apt-get install postgresql` (scripts/test does this)"
    )


class PostgresServer:
    """``initdb`` + ``postgres`` on 127.0.0.1, trust auth, stopped by pid.

    PostgreSQL refuses to run as root, so as root the cluster runs as the ``postgres`` user
    (``runuser``) in a folder it owns under the system temp dir (pytest's temp folders are
    0700 and not traversable by another user). ``base_dir`` keeps the server log.
    """

    def __init__(self, base_dir: Path, *, superuser: str = "postgres") -> None:
        self.base_dir = base_dir
        self.superuser = superuser
        self.port = 0
        self.bindir = find_postgres_bindir()
        self._as_root = os.geteuid() == 0
        self.data_root = Path(tempfile.mkdtemp(prefix="factflow-pg-"))
        self.data_dir = self.data_root / "data"
        self._process: ServerProcess | None = None

    def _run_as(self) -> list[str]:
        return ["runuser", "-u", "postgres", "--"] if self._as_root else []

    def start(self) -> None:
        if self._as_root:
            entry = pwd.getpwnam("postgres")
            os.chown(self.data_root, entry.pw_uid, entry.pw_gid)
        if not self.data_dir.exists():
            result = subprocess.run(
                [
                    *self._run_as(),
                    str(self.bindir / "initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    self.superuser,
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--no-sync",
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            if result.returncode != 0:
                raise ServerStartError(f"initdb failed: {result.stderr.strip()[-2000:]}")
        self.port = free_port()
        self._launch()

    def _launch(self) -> None:
        """Start ``postgres`` on :attr:`port` over the data folder and wait until it answers."""
        self._process = ServerProcess(
            "postgres",
            [
                *self._run_as(),
                str(self.bindir / "postgres"),
                "-D",
                str(self.data_dir),
                "-p",
                str(self.port),
                "-k",
                str(self.data_root),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=200",
            ],
            log_path=self.base_dir / "postgres.log",
        )
        self._process.start()
        try:
            ready = wait_until(self._ready, timeout=60, interval=0.2)
        except ServerStartError:
            ready = False
        if not ready:
            self._process.stop()
            raise self._process.fail("did not accept connections within 60 s")

    def _ready(self) -> bool:
        if self._process is None or not self._process.running():
            raise ServerStartError("postgres exited during start-up")
        if not tcp_open(self.port):
            return False
        result = subprocess.run(
            [str(self.bindir / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
            capture_output=True,
            check=False,
        )
        return result.returncode == 0

    def psql(self, sql: str, *, database: str = "postgres") -> str:
        """Run ``sql`` as the superuser and return its output."""
        result = subprocess.run(
            [
                str(self.bindir / "psql"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                self.superuser,
                "-d",
                database,
                "-v",
                "ON_ERROR_STOP=1",
                "-At",
                "-c",
                sql,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise ServerStartError(f"psql failed: {result.stderr.strip()}")
        return result.stdout

    def create_database(self, name: str) -> str:
        """Create database ``name`` (if missing) and return its SQLAlchemy URL."""
        if not name.replace("_", "").isalnum():
            raise ValueError(f"test database names are plain identifiers, not {name!r}")
        exists = self.psql(f"SELECT 1 FROM pg_database WHERE datname = '{name}'")
        if not exists.strip():
            self.psql(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def url(
        self, database: str = "postgres", *, user: str | None = None, password: str | None = None
    ) -> str:
        """A ``postgresql+psycopg://`` URL for ``database``."""
        auth = user or self.superuser
        if password is not None:
            auth += f":{password}"
        return f"postgresql+psycopg://{auth}@127.0.0.1:{self.port}/{database}"

    def halt(self, *, crash: bool = False) -> None:
        """Stop the server (a fast shutdown, or a SIGKILL with ``crash``) but keep its data
        and port, for fault tests; :meth:`restart` brings it back at the same address."""
        if self._process is None:
            return
        if crash:
            self._process.kill()
        else:
            self._process.stop(sig=signal.SIGINT, timeout=20)
        self._process = None

    def restart(self) -> None:
        """Start a halted server again: same data, same port, so clients reconnect."""
        if self._process is not None or not self.port:
            raise ServerStartError("restart() is for a server that was started, then halted")
        self._launch()

    def stop(self) -> None:
        if self._process is not None:
            # SIGINT is PostgreSQL's "fast shutdown"; SIGTERM would wait for clients.
            self._process.stop(sig=signal.SIGINT, timeout=20)
            self._process = None
        with contextlib.suppress(OSError):
            shutil.rmtree(self.data_root)
