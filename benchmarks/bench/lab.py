"""The lab: private RabbitMQ and SeaweedFS on loopback, the stored objects, one child per run.

Objects are written once per storage (the folder directly, S3 through obstore on 16
threads) and registered as parent executions the way a user registers a stage stored
elsewhere (``create_execution`` + ``record_stored_stage``). Each repetition of a measurement
runs in a fresh child process (``bench.child``); the queue is purged after each one.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pika
from support.servers.rabbitmq import RabbitMQServer
from support.servers.seaweedfs import SeaweedFSServer

from factflow_replay_dagster.connect import open_execution_store
from factflow_replay_dagster.layout import stage_prefix
from factflow_replay_dagster.pipelines import sample_config
from factflow_replay_dagster.snapshot import ConfigSnapshot

from .common import FROM_STAGE, PIPELINE, SOURCE_ROUTE, TO_ROUTE, Context, Dataset, settings
from .storage import obstore_store

BENCH_DIR = Path(__file__).resolve().parents[1]
ROOT = BENCH_DIR.parent


class MeasurementError(RuntimeError):
    """A child process failed; the message holds its traceback."""


class Lab:
    """Servers, data and the child-process runner for one benchmark run (a context manager)."""

    def __init__(self, *, s3: bool = True, log: Any = print) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="factflow-bench-"))
        self.log = log
        self.want_s3 = s3
        self.rabbitmq = RabbitMQServer(self.base / "rabbitmq")
        self.seaweedfs: SeaweedFSServer | None = None
        self.written: set[tuple[str, Dataset]] = set()
        self.loads: list[float] = []
        snapshot = ConfigSnapshot.load(sample_config(PIPELINE))
        self.snapshot = snapshot
        self.queue = snapshot.resolve_route("bench", TO_ROUTE).queue

    def __enter__(self) -> Lab:
        self.rabbitmq.start()
        if self.want_s3:
            self.seaweedfs = SeaweedFSServer(self.base / "seaweedfs")
            self.seaweedfs.start()
            self.seaweedfs.create_bucket("bench")
        self._declare()
        return self

    def __exit__(self, *exc: object) -> None:
        self.rabbitmq.stop()
        if self.seaweedfs is not None:
            self.seaweedfs.stop()
        shutil.rmtree(self.base, ignore_errors=True)

    @property
    def context(self) -> Context:
        sw = self.seaweedfs
        return {
            "home": str(self.base / "home"),
            "local_root": str(self.base / "objects"),
            "local_url": (self.base / "objects").as_uri(),
            "database_url": f"sqlite:///{self.base / 'executions.db'}",
            "rabbitmq_url": self.rabbitmq.url,
            "beam_pid": self.rabbitmq.beam_pid(),
            "queue": self.queue,
            "s3": None
            if sw is None
            else {
                "endpoint": sw.endpoint_url,
                "region": sw.region_name,
                "bucket": "bench",
                "key": sw.access_key,
                "secret": sw.secret_key,
            },
        }

    # -- broker ----------------------------------------------------------------------------

    def _channel_do(self, action: str) -> None:
        connection = pika.BlockingConnection(pika.URLParameters(self.rabbitmq.url))
        try:
            channel = connection.channel()
            if action == "purge":
                channel.queue_purge(self.queue)
            else:
                channel.queue_declare(self.queue, durable=True)
        finally:
            connection.close()

    def _declare(self) -> None:
        self._channel_do("declare")

    def purge(self) -> None:
        self._channel_do("purge")

    # -- data ------------------------------------------------------------------------------

    def ensure(self, storage: str, data: Dataset) -> str:
        """Write ``data`` to ``storage`` once and register its parent; return the parent id."""
        parent = data.parent(storage)
        if (storage, data) in self.written:
            return parent
        started = time.perf_counter()
        prefix = stage_prefix(parent, SOURCE_ROUTE, FROM_STAGE)
        filler = os.urandom(data.size)
        if storage == "local":
            folder = self.base / "objects" / prefix
            folder.mkdir(parents=True)
            for i in range(data.count):
                (folder / data.name(i)).write_bytes(data.body(i, filler))
        else:
            import obstore

            store = obstore_store(self.context)

            def put(i: int) -> None:
                obstore.put(store, prefix + data.name(i), data.body(i, filler))

            with ThreadPoolExecutor(16) as pool:
                list(pool.map(put, range(data.count)))
        cfg = settings(self.context, storage=storage, broker="rabbitmq")
        with open_execution_store(cfg) as executions:
            executions.create_execution(parent, self.snapshot, origin="registered")
            executions.record_stored_stage(
                parent, SOURCE_ROUTE, FROM_STAGE, count=data.count, size=data.count * data.size
            )
        self.written.add((storage, data))
        self.log(f"  wrote {data.label} to {storage} in {time.perf_counter() - started:.1f} s")
        return parent

    # -- measuring -------------------------------------------------------------------------

    def queue_file(self) -> str:
        return str(self.base / "queues" / f"{uuid.uuid4().hex}.db")

    def measure(
        self, fn: str, params: dict[str, Any], *, reps: int, profile: str | None = None
    ) -> list[dict[str, Any]]:
        """Run ``fn`` (``module:function`` under ``bench``) ``reps`` times, each in a new
        child process; embedded-queue runs get a fresh queue file each."""
        figures = []
        for _ in range(reps):
            self.loads.append(os.getloadavg()[0])
            run_params = dict(params)
            if "queue_file" in run_params:
                run_params["queue_file"] = self.queue_file()
            figures.append(self.child(fn, run_params, profile=profile))
            if "queue_file" in run_params:
                for path in Path(run_params["queue_file"]).parent.glob("*.db*"):
                    path.unlink()
            self.purge()
        return figures

    def child(self, fn: str, params: dict[str, Any], *, profile: str | None) -> dict[str, Any]:
        spec = {"fn": f"bench.{fn}", "ctx": self.context, "params": params, "profile": profile}
        work = self.base / "runs" / uuid.uuid4().hex
        work.mkdir(parents=True)
        (work / "spec.json").write_text(json.dumps(spec))
        done = subprocess.run(
            [sys.executable, "-m", "bench.child", str(work / "spec.json"), str(work / "out.json")],
            env=child_env(),
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        out = work / "out.json"
        result = json.loads(out.read_text()) if out.exists() else {"ok": False, "error": ""}
        if not result["ok"]:
            raise MeasurementError(
                f"{fn} {params} failed:\n{result['error']}\n{done.stderr[-3000:]}"
            )
        return dict(result["figures"])


def child_env() -> dict[str, str]:
    """This environment without FACTFLOW_* and AWS_* (settings come from values alone, and
    obstore would read AWS_*), with the benchmarks and the test servers importable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FACTFLOW_", "AWS_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(BENCH_DIR), str(ROOT / "tests")])
    return env
