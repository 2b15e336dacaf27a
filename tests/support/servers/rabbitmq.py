"""A private RabbitMQ node for tests and benchmarks: own ports, data and logs, stopped by pid."""

from __future__ import annotations

__all__ = ["RabbitMQServer", "TLSFiles"]

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pika
import pika.exceptions

from ._proc import Account, ServerProcess, ServerStartError, as_account, free_port, tcp_open

_BIN = Path("/usr/lib/rabbitmq/bin")
_SERVICE_USER = "rabbitmq"
_SHARED_ROOT_NAME = "factflow-rabbitmq-nodes"
_OWNER_FILE = "owner"
_STALE_SECONDS = 24 * 3600


@dataclass(frozen=True)
class TLSFiles:
    """PEM files of a TLS listener: the CA that signed ``cert``, and ``cert``'s private key."""

    ca: Path
    cert: Path
    key: Path


def _service_account() -> Account:
    """The (uid, gid) to run the node as: the ``rabbitmq`` user when we are root, else None."""
    if os.geteuid() != 0:
        return None
    entry = pwd.getpwnam(_SERVICE_USER)
    return entry.pw_uid, entry.pw_gid


def _shared_root() -> Path:
    """A root-owned folder every user can traverse (0711), holding the nodes' data when root.

    The data cannot live under pytest's ``tmp_path``: its ``pytest-of-root`` parent is 0700,
    and every new pytest session resets it to 0700, which would lock a running node of a
    parallel session out of its own files.
    """
    root = Path(tempfile.gettempdir()) / _SHARED_ROOT_NAME
    with contextlib.suppress(FileExistsError):
        root.mkdir(mode=0o711)
    info = root.lstat()
    if root.is_symlink() or not root.is_dir() or info.st_uid != 0:
        raise ServerStartError(f"{root} is not a root-owned folder; refusing to use it")
    root.chmod(0o711)
    return root


def _pid_alive(pid_file: Path) -> bool:
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return False
    return Path(f"/proc/{pid}").exists()


def _sweep(root: Path) -> None:
    """Remove data of stopped nodes whose base folder is gone (pytest removed it)."""
    for data in root.iterdir():
        owner = data / _OWNER_FILE
        try:
            base_gone = not Path(owner.read_text().strip()).exists()
        except OSError:
            base_gone = time.time() - data.lstat().st_mtime > _STALE_SECONDS
        if base_gone and not any(_pid_alive(p) for p in (data / "mnesia").glob("*.pid")):
            shutil.rmtree(data, ignore_errors=True)


def _descendants(pid: int) -> dict[int, bytes]:
    """Pids (with their command lines) of every process below ``pid``, in any session."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found: dict[int, bytes] = {}
    todo = list(children.get(pid, []))
    while todo:
        child = todo.pop()
        with contextlib.suppress(OSError):
            found[child] = Path(f"/proc/{child}/cmdline").read_bytes()
        todo.extend(children.get(child, []))
    return found


class RabbitMQServer:
    """One private RabbitMQ node (``factflow-<port>@localhost``) listening on 127.0.0.1 only.

    Ports (AMQP and Erlang distribution) come from :func:`free_port`, so several nodes can
    run at once. As root the node runs as the ``rabbitmq`` user (as the Debian package does)
    and keeps its data under ``$TMPDIR/factflow-rabbitmq-nodes/`` (``base_dir/node`` links
    there); otherwise it runs as the current user with its data in ``base_dir/node``.

    :meth:`stop` is graceful (SIGTERM: the node flushes and closes its stores) and keeps
    the data, so :meth:`start` brings back the same node with its durable queues and
    persistent messages; :meth:`kill` is a crash (SIGKILL). Data of nodes whose ``base_dir``
    is gone is removed by the next :meth:`start` of any server.

    epmd, Erlang's per-host name registry, is started by the first node on the host (as a
    daemon, bound to 127.0.0.1) and is left running: every Erlang node on the host (other
    test sessions' nodes, ``rabbitmqctl``) shares it, so stopping it would break them.

    With ``tls`` the node also listens for ``amqps://`` on :attr:`tls_port` (127.0.0.1),
    presenting ``tls.cert``; it asks clients for no certificate.
    """

    def __init__(
        self, base_dir: Path, *, start_timeout: float = 60.0, tls: TLSFiles | None = None
    ) -> None:
        self.base_dir = Path(base_dir)
        self.start_timeout = start_timeout
        self.tls = tls
        taken: set[int] = set()

        def port() -> int:
            found = free_port()
            while found in taken:
                found = free_port()
            taken.add(found)
            return found

        self._port = port()
        self._dist_port = port()
        self._tls_port = port() if tls is not None else None
        self.node = f"factflow-{self._port}@localhost"
        self._account = _service_account()
        self._data_dir: Path | None = None
        self._process: ServerProcess | None = None

    def __repr__(self) -> str:
        return f"RabbitMQServer(node={self.node!r}, port={self._port})"

    @property
    def port(self) -> int:
        """The AMQP port on 127.0.0.1."""
        return self._port

    @property
    def url(self) -> str:
        """An ``amqp://`` URL for the default ``guest`` user and vhost ``/``."""
        return f"amqp://guest:guest@127.0.0.1:{self._port}/%2F"

    @property
    def tls_port(self) -> int:
        """The ``amqps://`` port on 127.0.0.1 (only for a server started with ``tls``)."""
        if self._tls_port is None:
            raise ServerStartError(f"{self.node} has no TLS listener")
        return self._tls_port

    def amqp_url(self, user: str = "guest", password: str = "guest", *, tls: bool = False) -> str:
        """A URL for ``user`` on vhost ``/``: ``amqps://`` to the TLS listener with ``tls``."""
        if tls:
            return f"amqps://{user}:{password}@127.0.0.1:{self.tls_port}/%2F"
        return f"amqp://{user}:{password}@127.0.0.1:{self._port}/%2F"

    @property
    def data_dir(self) -> Path:
        """Where the node keeps its database, logs and Erlang cookie."""
        return self._prepare()

    @property
    def log_path(self) -> Path:
        """The node's own log file."""
        return self.data_dir / "log" / f"{self.node}.log"

    def running(self) -> bool:
        return self._process is not None and self._process.running()

    def beam_pid(self) -> int | None:
        """The pid of the Erlang VM (``beam.smp``) running the node, whose CPU time is the
        broker's (benchmarks read it from ``/proc``); None when the node is not running."""
        proc = self._process
        if proc is None or proc.proc is None or not proc.running():
            return None
        for pid in [proc.pid, *_descendants(proc.pid)]:
            with contextlib.suppress(OSError):
                if Path(f"/proc/{pid}/comm").read_text().strip().startswith("beam"):
                    return pid
        return None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start the node (again) and wait until it answers AMQP, or raise ServerStartError."""
        if self.running():
            return
        data = self._prepare()
        self._process = ServerProcess(
            f"rabbitmq node {self.node}",
            [str(_BIN / "rabbitmq-server")],
            log_path=data / "stdout.log",
            env=self._env(),
            cwd=data,
            account=self._account,
        )
        self._process.start()
        deadline = time.monotonic() + self.start_timeout
        while not (
            tcp_open(self._port)
            and self._amqp_answers()
            and (self._tls_port is None or tcp_open(self._tls_port))
        ):
            if not self._process.running():
                raise self._failure("exited while starting")
            if time.monotonic() > deadline:
                self.kill()
                raise self._failure(f"did not answer AMQP within {self.start_timeout:.0f} s")
            time.sleep(0.25)

    def stop(self, *, timeout: float = 30.0) -> None:
        """Stop gracefully (SIGTERM to the process group), keeping the data; idempotent."""
        self._end(lambda proc: proc.stop(timeout=timeout, sig=signal.SIGTERM))

    def kill(self) -> None:
        """SIGKILL the node at once, like a crash; the data stays for :meth:`start`."""
        self._end(lambda proc: proc.kill())

    def restart(self) -> None:
        """Graceful :meth:`stop` followed by :meth:`start` of the same node."""
        self.stop()
        self.start()

    def ctl(self, *args: str, timeout: float = 60.0) -> str:
        """Run ``rabbitmqctl -n <node> *args`` against this node and return its output.

        Raises :class:`subprocess.CalledProcessError` (with rabbitmqctl's stderr as a note).
        """
        argv = [str(_BIN / "rabbitmqctl"), "-n", self.node, *args]
        try:
            done = subprocess.run(
                argv,
                env=self._env(),
                cwd=self.data_dir,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=True,
                **as_account(self._account),
            )
        except subprocess.CalledProcessError as exc:
            exc.add_note(f"rabbitmqctl said: {(exc.stderr or exc.stdout or '').strip()[-2000:]}")
            raise
        return done.stdout

    # -- internals ---------------------------------------------------------------------------

    def _end(self, how: Callable[[ServerProcess], None]) -> None:
        proc = self._process
        if proc is None or proc.proc is None:
            return
        # erl_child_setup and inet_gethost run in sessions of their own: find them first.
        below = _descendants(proc.pid)
        how(proc)
        for pid, cmdline in below.items():
            with contextlib.suppress(OSError):
                if Path(f"/proc/{pid}/cmdline").read_bytes() == cmdline:
                    os.kill(pid, signal.SIGKILL)

    def _prepare(self) -> Path:
        """Create (once) the node's folders, owned by the account it runs as."""
        if self._data_dir is not None:
            return self._data_dir
        self.base_dir.mkdir(parents=True, exist_ok=True)
        if self._account is None:
            data = self.base_dir / "node"
            data.mkdir(exist_ok=True)
        else:
            root = _shared_root()
            _sweep(root)
            data = Path(tempfile.mkdtemp(prefix=f"{self.node.split('@')[0]}-", dir=root))
            (data / _OWNER_FILE).write_text(f"{self.base_dir.resolve()}\n")
            link = self.base_dir / "node"
            link.unlink(missing_ok=True)
            link.symlink_to(data)
        for sub in ("mnesia", "log"):
            (data / sub).mkdir(exist_ok=True)
        for name in ("enabled_plugins", "rabbitmq-env.conf"):
            (data / name).touch()
        (data / "rabbitmq.conf").write_text("log.console.level = warning\n" + self._tls_conf(data))
        if self._account is not None:
            data.chmod(0o750)
            for path in [data, *data.rglob("*")]:
                os.chown(path, *self._account, follow_symlinks=False)
        self._data_dir = data
        return data

    def _tls_conf(self, data: Path) -> str:
        """The TLS listener's lines of ``rabbitmq.conf``, its PEM files copied into ``data``
        (the node's account must read them)."""
        if self.tls is None:
            return ""
        folder = data / "tls"
        folder.mkdir(exist_ok=True)
        for name, source in (("ca.pem", self.tls.ca), ("cert.pem", self.tls.cert)):
            shutil.copyfile(source, folder / name)
        shutil.copyfile(self.tls.key, folder / "key.pem")
        (folder / "key.pem").chmod(0o600)
        return (
            f"listeners.ssl.1 = 127.0.0.1:{self._tls_port}\n"
            f"ssl_options.cacertfile = {folder / 'ca.pem'}\n"
            f"ssl_options.certfile = {folder / 'cert.pem'}\n"
            f"ssl_options.keyfile = {folder / 'key.pem'}\n"
            "ssl_options.verify = verify_none\n"
            "ssl_options.fail_if_no_peer_cert = false\n"
        )

    def _env(self) -> dict[str, str]:
        data = self._prepare()
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("RABBITMQ_", "ERL_"))
        }
        env.update(
            HOME=str(data),  # the Erlang cookie lives here, shared by the node and rabbitmqctl
            LC_ALL="C.UTF-8",
            ERL_EPMD_ADDRESS="127.0.0.1",
            RABBITMQ_NODENAME=self.node,
            RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_NODE_PORT=str(self._port),
            RABBITMQ_DIST_PORT=str(self._dist_port),
            RABBITMQ_MNESIA_BASE=str(data / "mnesia"),
            RABBITMQ_LOG_BASE=str(data / "log"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(data / "enabled_plugins"),
            RABBITMQ_CONFIG_FILE=str(data / "rabbitmq.conf"),
            RABBITMQ_ADVANCED_CONFIG_FILE=str(data / "advanced.config"),
            RABBITMQ_CONF_ENV_FILE=str(data / "rabbitmq-env.conf"),
            RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}",
        )
        return env

    def _amqp_answers(self) -> bool:
        params = pika.URLParameters(f"{self.url}?connection_attempts=1&socket_timeout=2")
        try:
            pika.BlockingConnection(params).close()
        except (pika.exceptions.AMQPError, OSError):
            return False
        return True

    def _failure(self, reason: str) -> ServerStartError:
        assert self._process is not None
        try:
            node_log = "\n".join(self.log_path.read_text(errors="replace").splitlines()[-30:])
        except OSError:
            node_log = "(no node log)"
        return ServerStartError(
            f"{self._process.name} {reason}; output {self._process.log_path}:\n"
            f"{self._process.log_tail()}\nnode log {self.log_path}:\n{node_log}"
        )
