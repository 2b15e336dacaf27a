"""How fast the embedded SQLite queue publishes and consumes, per batch size (run by hand).

Usage: ``python benchmarks/bench_embedded_queue.py [--messages 20000] [--body-bytes 1024]``.
Each batch size gets a fresh file; publishing commits ``batch_size`` messages per
transaction (one fsync each), consuming claims ``batch_size`` messages per transaction
(``prefetch``) and acks every message in its own transaction, as a consumer does.
The markdown table goes to ``benchmarks/results/embedded_queue.md``.
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
from collections.abc import Iterator
from pathlib import Path

from factflow_replay_dagster.queues.base import OutgoingMessage
from factflow_replay_dagster.queues.embedded import EmbeddedQueue

BATCH_SIZES = (1, 50, 200, 1000)
RESULTS = Path(__file__).parent / "results" / "embedded_queue.md"


def messages(count: int, body: bytes) -> Iterator[OutgoingMessage]:
    for i in range(count):
        yield OutgoingMessage(message_id=f"bench-{i:08d}", body=body, headers={"n": i})


def run(directory: Path, count: int, body: bytes, batch_size: int) -> tuple[float, float]:
    """Publish then consume+ack ``count`` messages; return (publish/s, consume+ack/s)."""
    queue = EmbeddedQueue(directory / f"bench-{batch_size}.db", batch_size=batch_size)
    try:
        queue.declare_queue("bench")
        started = time.perf_counter()
        outcome = queue.publish("bench", messages(count, body))
        published = time.perf_counter() - started
        assert outcome.confirmed == count

        stop = threading.Event()
        started = time.perf_counter()
        deliveries = queue.consume(["bench"], stop=stop, prefetch=batch_size)
        for received, delivery in enumerate(deliveries, start=1):
            delivery.ack()
            if received == count:
                stop.set()
        consumed = time.perf_counter() - started
        assert queue.depth("bench") == 0
    finally:
        queue.close()
    return count / published, count / consumed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--body-bytes", type=int, default=1024)
    parser.add_argument("--dir", type=Path, default=None, help="where the queue files go")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()

    body = os.urandom(args.body_bytes)
    rows = []
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="bench-embedded-") as tmp:
        for batch_size in BATCH_SIZES:
            publish_rate, consume_rate = run(Path(tmp), args.messages, body, batch_size)
            print(
                f"batch {batch_size:>5}: publish {publish_rate:>9,.0f} msg/s, "
                f"consume+ack {consume_rate:>9,.0f} msg/s"
            )
            rows.append(f"| {batch_size} | {publish_rate:,.0f} | {consume_rate:,.0f} |")

    table = "\n".join(
        [
            "# Embedded queue throughput",
            "",
            f"{args.messages:,} messages of {args.body_bytes:,} bytes per run, one fresh SQLite "
            "file per batch size (WAL, `synchronous=FULL`). Publishing commits `batch_size` "
            "messages per transaction; consuming claims `batch_size` messages per transaction "
            "(`prefetch`) and acks each message in its own committed transaction.",
            "",
            "Consume+ack is bound by one fsync per ack, so it follows the disk's fsync latency "
            "more than the batch size; expect run-to-run spread on shared or virtual disks.",
            "",
            f"Measured {time.strftime('%Y-%m-%d')} on {platform.platform()}, "
            f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
            f"{os.cpu_count()} CPUs.",
            "",
            "| batch size | publish msgs/s | consume+ack msgs/s |",
            "|---:|---:|---:|",
            *rows,
            "",
        ]
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(table)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
