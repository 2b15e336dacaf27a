"""End-to-end replay throughput: DetachedReplayService reading stored artefacts and publishing
them with confirms, per storage and broker (run by hand or by scripts/bench).

Usage: ``python benchmarks/bench_replay.py [--artefacts 10000] [--body-bytes 1024] [--s3]``.
Artefacts are written once to a local folder (and, with ``--s3``, to a private SeaweedFS),
recorded as a registered execution, then replayed into the embedded queue and into a private
RabbitMQ node at several confirm windows. The table goes to ``benchmarks/results/replay.md``.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from support.servers.rabbitmq import RabbitMQServer
from support.servers.seaweedfs import SeaweedFSServer

from factflow_replay_dagster.executions import ExecutionStore
from factflow_replay_dagster.layout import artefact_key
from factflow_replay_dagster.pipelines import sample_config
from factflow_replay_dagster.queues.base import QueuePublisher
from factflow_replay_dagster.queues.embedded import EmbeddedQueue
from factflow_replay_dagster.queues.rabbitmq import RabbitMQPublisher
from factflow_replay_dagster.replay import DetachedReplayService, ReplayRequest
from factflow_replay_dagster.snapshot import ConfigSnapshot
from factflow_replay_dagster.storage.base import ArtefactStore
from factflow_replay_dagster.storage.local import LocalArtefactStore
from factflow_replay_dagster.storage.s3 import S3ArtefactStore

RESULTS = Path(__file__).parent / "results" / "replay.md"


def fill(store: ArtefactStore, execution_id: str, count: int, body: bytes) -> None:
    keys = [
        artefact_key(execution_id, "ingest", "parse", f"doc-{i:07d}.json") for i in range(count)
    ]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda key: store.write(key, body), keys))


def replay_once(
    store: ArtefactStore, executions: ExecutionStore, publisher: QueuePublisher, parent: str
) -> float:
    publisher.declare_queue("news.enrich")
    service = DetachedReplayService(
        artefacts=store, executions=executions, publisher=publisher, progress_every=1000
    )
    started = time.perf_counter()
    result = service.run(
        ReplayRequest(source_execution_id=parent, from_stage="parse", to_route="enrich")
    )
    seconds = time.perf_counter() - started
    assert result.state == "SUCCEEDED", result
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--artefacts", type=int, default=10_000)
    parser.add_argument("--body-bytes", type=int, default=1024)
    parser.add_argument("--s3", action="store_true", help="also read from SeaweedFS (S3)")
    args = parser.parse_args()
    body = b"x" * args.body_bytes
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-replay-") as tmp:
        base = Path(tmp)
        executions = ExecutionStore(f"sqlite:///{base / 'executions.db'}")
        snapshot = ConfigSnapshot.load(sample_config("news"))
        stores: list[tuple[str, ArtefactStore]] = [("local folder", LocalArtefactStore(base / "a"))]
        seaweed = None
        if args.s3:
            seaweed = SeaweedFSServer(base / "seaweedfs")
            seaweed.start()
            stores.append(
                (
                    "S3 (SeaweedFS)",
                    S3ArtefactStore(
                        seaweed.config(), seaweed.create_bucket("bench-replay"), prefix="p"
                    ),
                )
            )
        broker = RabbitMQServer(base / "rabbitmq")
        broker.start()
        try:
            for label, store in stores:
                parent = f"bench-{label.split()[0].lower()}"
                executions.create_execution(parent, snapshot, origin="registered")
                fill(store, parent, args.artefacts, body)
                executions.record_stored_stage(
                    parent, "ingest", "parse", count=args.artefacts, size=args.artefacts * len(body)
                )
                targets: list[tuple[str, str, QueuePublisher]] = [
                    ("embedded queue", "-", EmbeddedQueue(base / f"queue-{parent}.db")),
                    *[
                        ("RabbitMQ", str(w), RabbitMQPublisher(broker.url, window=w))
                        for w in (16, 256, 1024)
                    ],
                ]
                for broker_label, window, publisher in targets:
                    with publisher:
                        seconds = replay_once(store, executions, publisher, parent)
                    rows.append((label, broker_label, window, seconds))
                    print(f"{label:<16} {broker_label:<15} window {window:>5}: {seconds:6.2f} s")
        finally:
            broker.stop()
            if seaweed is not None:
                seaweed.stop()
    write(rows, args.artefacts, len(body))


def write(rows: list[tuple[str, str, str, float]], count: int, size: int) -> None:
    load = os.getloadavg()[0]
    lines = [
        "# Replay throughput (DetachedReplayService, end to end)",
        "",
        f"{count} stored artefacts of {size} bytes, read from storage (16 reads ahead), "
        "published persistent with confirms, progress saved every 1000; one run each.",
        "",
        f"Machine: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {platform.platform()}; "
        f"{os.cpu_count()} CPUs; Python {platform.python_version()}; load average {load:.2f} "
        "at the end (shared machine: expect +-50% between runs).",
        "",
        "| storage | broker | window | seconds | artefacts/s | MB/s |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for storage, broker, window, seconds in rows:
        lines.append(
            f"| {storage} | {broker} | {window} | {seconds:.2f} | {count / seconds:,.0f} "
            f"| {count * size / seconds / 1e6:.2f} |"
        )
    lines += [
        "",
        "Regenerate with `scripts/bench` (or `.venv/bin/python benchmarks/bench_replay.py --s3`).",
    ]
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
