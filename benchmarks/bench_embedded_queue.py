"""How fast the embedded SQLite queue publishes and consumes, as a replay and a worker use it.

Usage: ``python benchmarks/bench_embedded_queue.py [--messages 10000] [--body-bytes 1024]``.

Messages are shaped like a replay's: artefact headers (12, with the replay id), a position,
a ``body-bytes`` body; they are built before the clock starts (building them is the
replay's cost, not the queue's). Publishing goes through ``publish`` with ``on_confirmed``
and ``should_stop``, as the replay service calls it, once per batch size. Consuming is a
worker's loop: ``consume(prefetch=...)`` and an ack per message, once per prefetch with
grouped acks (the default ``ack_delay``) and with ``ack_delay=0`` (one commit per ack).
Every run gets a fresh file. The markdown tables go to ``benchmarks/results/embedded_queue.md``.
"""

from __future__ import annotations

__all__ = ["main"]

import argparse
import os
import platform
import sqlite3
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from factflow_replay_dagster.messages import ArtefactHeaders
from factflow_replay_dagster.queues.base import OutgoingMessage
from factflow_replay_dagster.queues.embedded import EmbeddedQueue

BATCH_SIZES = (50, 200, 1000)
PREFETCHES = (1, 4, 16, 64, 256)
RESULTS = Path(__file__).parent / "results" / "embedded_queue.md"
SOURCE = "news-20261123T101500-3f9a1c2b"


def replay_messages(count: int, body: bytes) -> list[OutgoingMessage]:
    """``count`` messages as a replay of ``SOURCE``'s ``parse`` stage into ``enrich`` sends."""
    messages = []
    for i in range(count):
        key = f"executions/{SOURCE}/news/parse/doc-{i:08d}.json"
        headers = ArtefactHeaders(
            execution_id=f"{SOURCE}-replay",
            attempt=1,
            route="enrich",
            stage="annotate",
            source_execution_id=SOURCE,
            source_route="news",
            source_stage="parse",
            object_key=key,
            etag=f"{i:032x}",
            replay_id="replay-0a1b2c3d",
        )
        messages.append(headers.message(body))
    return messages


def publish_rate(path: Path, messages: Sequence[OutgoingMessage], batch_size: int) -> float:
    """Publish ``messages`` into a fresh queue; return messages/s."""
    confirmed = 0

    def on_confirmed(batch: Sequence[OutgoingMessage]) -> None:
        nonlocal confirmed
        confirmed += len(batch)

    stop = threading.Event()
    with EmbeddedQueue(path, batch_size=batch_size) as queue:
        queue.declare_queue("bench")
        started = time.perf_counter()
        outcome = queue.publish(
            "bench", iter(messages), on_confirmed=on_confirmed, should_stop=stop.is_set
        )
        elapsed = time.perf_counter() - started
    assert outcome.confirmed == confirmed == len(messages)
    return len(messages) / elapsed


def consume_rate(
    path: Path, messages: Sequence[OutgoingMessage], prefetch: int, ack_delay: float | None
) -> float:
    """Publish ``messages``, then consume and ack them all as a worker does; return messages/s.

    ``ack_delay`` None keeps the queue's default.
    """
    options: dict[str, Any] = {} if ack_delay is None else {"ack_delay": ack_delay}
    with EmbeddedQueue(path) as publisher:
        publisher.declare_queue("bench")
        publisher.publish("bench", iter(messages))
    stop = threading.Event()
    with EmbeddedQueue(path, **options) as queue:
        started = time.perf_counter()
        deliveries = queue.consume(["bench"], stop=stop, prefetch=prefetch)
        for received, delivery in enumerate(deliveries, start=1):
            delivery.ack()
            if received == len(messages):
                stop.set()  # ending the iteration commits the last acks
        elapsed = time.perf_counter() - started
    with EmbeddedQueue(path) as check:
        assert check.depth("bench") == 0
    return len(messages) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--body-bytes", type=int, default=1024)
    parser.add_argument(
        "--ack-delays",
        default="default,0",
        help="comma-separated ack_delay values to consume with ('default': the queue's own)",
    )
    parser.add_argument("--dir", type=Path, default=None, help="where the queue files go")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    delays = [None if d == "default" else float(d) for d in args.ack_delays.split(",")]

    messages = replay_messages(args.messages, os.urandom(args.body_bytes))
    publish_rows, consume_rows = [], []
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="bench-embedded-") as tmp:
        files = (Path(tmp) / f"run-{n}.db" for n in range(1_000))
        for batch_size in BATCH_SIZES:
            rate = publish_rate(next(files), messages, batch_size)
            print(f"publish  batch {batch_size:>5}: {rate:>9,.0f} msg/s")
            publish_rows.append(f"| {batch_size} | {rate:,.0f} |")
        for delay in delays:
            label = "default (grouped)" if delay is None else f"{delay:g}"
            for prefetch in PREFETCHES:
                rate = consume_rate(next(files), messages, prefetch, delay)
                print(f"consume  prefetch {prefetch:>4}, ack_delay {label}: {rate:>9,.0f} msg/s")
                consume_rows.append(f"| {prefetch} | {label} | {rate:,.0f} |")

    table = "\n".join(
        [
            "# Embedded queue throughput",
            "",
            f"{args.messages:,} messages of {args.body_bytes:,} bytes per run, shaped like a "
            "replay's (12 artefact headers, a position), one fresh SQLite file per run (WAL, "
            "`synchronous=FULL`).",
            "",
            "**Publish** as the replay service calls it (`on_confirmed`, `should_stop`): "
            "`batch_size` messages per committed transaction (200 by default).",
            "",
            "| batch size | publish msgs/s |",
            "|---:|---:|",
            *publish_rows,
            "",
            "**Consume+ack** as a worker does: `consume(prefetch=...)`, one ack per message. "
            "Grouped acks (the default `ack_delay`, 0.05 s) are committed with the next claim, "
            "so about one commit per `prefetch` messages; `ack_delay=0` commits every ack on "
            "its own, as the queue did before acks were grouped, and follows the disk's fsync "
            "latency. The worker's default prefetch is 16.",
            "",
            "| prefetch | ack_delay | consume+ack msgs/s |",
            "|---:|---|---:|",
            *consume_rows,
            "",
            f"Measured {time.strftime('%Y-%m-%d')} on {platform.platform()}, "
            f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
            f"{os.cpu_count()} CPUs. Shared small machines: expect run-to-run spread.",
            "",
        ]
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(table)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
