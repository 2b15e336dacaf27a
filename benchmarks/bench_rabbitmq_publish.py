"""Measure confirmed publishing to RabbitMQ: RabbitMQPublisher windows vs confirm-per-message.

Starts a private RabbitMQ node, publishes N persistent messages per configuration to a fresh
durable queue, and writes a markdown table (msgs/s) to benchmarks/results/rabbitmq_publish.md.

    .venv/bin/python benchmarks/bench_rabbitmq_publish.py [--messages 20000] [--body-size 1024]
"""

from __future__ import annotations

__all__: list[str] = []

import argparse
import datetime
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pika
from support.servers.rabbitmq import RabbitMQServer

from factflow_replay_dagster.queues.base import OutgoingMessage
from factflow_replay_dagster.queues.rabbitmq import RabbitMQPublisher

RESULTS = Path(__file__).parent / "results" / "rabbitmq_publish.md"


def messages(count: int, body: bytes) -> Iterator[OutgoingMessage]:
    for i in range(count):
        yield OutgoingMessage(
            message_id=f"bench-{i:08d}",
            body=body,
            headers={"seq": i, "route": "bench"},
            content_type="application/octet-stream",
            position=f"key/{i:08d}",
        )


def with_queue(url: str, queue: str, *, delete: bool) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        if delete:
            channel.queue_delete(queue)
        else:
            channel.queue_declare(queue, durable=True)
    finally:
        connection.close()


def run_publisher(url: str, queue: str, count: int, body: bytes, window: int) -> float:
    with RabbitMQPublisher(url, window=window) as publisher:
        started = time.perf_counter()
        outcome = publisher.publish(queue, messages(count, body))
        elapsed = time.perf_counter() - started
    assert outcome.confirmed == count, outcome
    return elapsed


def run_blocking_baseline(url: str, queue: str, count: int, body: bytes) -> float:
    """The naive way: pika BlockingConnection, one blocking confirm per message."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        started = time.perf_counter()
        for message in messages(count, body):
            channel.basic_publish(
                "",
                queue,
                message.body,
                pika.BasicProperties(
                    delivery_mode=pika.DeliveryMode.Persistent,
                    message_id=message.message_id,
                    content_type=message.content_type,
                    type=message.type,
                    headers=dict(message.headers),
                ),
                mandatory=True,
            )
        return time.perf_counter() - started
    finally:
        connection.close()


def machine_line(server: RabbitMQServer) -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    rabbit = server.ctl("version").strip()
    return (
        f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC; {platform.node()}; "
        f"{platform.system()} {platform.release()}; {cpu} x{os.cpu_count()}; "
        f"Python {platform.python_version()}; pika {pika.__version__}; RabbitMQ {rabbit} "
        f"(private node on loopback, same machine); load average {os.getloadavg()[0]:.2f} "
        "at start (the machine is shared: expect +-50% between runs)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--body-size", type=int, default=1024)
    parser.add_argument("--windows", default="1,16,64,256,1024")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds between runs")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    count, body = args.messages, b"x" * args.body_size
    windows = [int(w) for w in args.windows.split(",")]

    base = Path(tempfile.mkdtemp(prefix="bench-rabbitmq-"))
    server = RabbitMQServer(base)
    server.start()
    rows: list[tuple[str, str, float]] = []
    try:
        machine = machine_line(server)
        configs: list[tuple[str, str, int | None]] = [
            ("BlockingConnection, confirm per message (baseline)", "1 (blocking)", None)
        ]
        configs += [("RabbitMQPublisher", str(w), w) for w in windows]
        for i, (name, window_text, window) in enumerate(configs):
            queue = f"bench.{i}"
            with_queue(server.url, queue, delete=False)
            if window is None:
                elapsed = run_blocking_baseline(server.url, queue, count, body)
            else:
                elapsed = run_publisher(server.url, queue, count, body, window)
            with_queue(server.url, queue, delete=True)
            time.sleep(args.settle)  # let the broker clean up before the next configuration
            rows.append((name, window_text, elapsed))
            print(f"{name:52} window {window_text:>12}: {count / elapsed:8.0f} msg/s")
    finally:
        server.stop()
        shutil.rmtree(server.data_dir, ignore_errors=True)
        shutil.rmtree(base, ignore_errors=True)

    baseline = count / rows[0][2]
    lines = [
        "# RabbitMQ confirmed publishing",
        "",
        f"{count} persistent messages of {args.body_size} bytes per configuration, each to a "
        "fresh durable queue, `mandatory`, publisher confirms; time from the call until the "
        "last confirm (one run each).",
        "",
        f"Machine: {machine}",
        "",
        "| configuration | window | seconds | msgs/s | vs baseline |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, window_text, elapsed in rows:
        rate = count / elapsed
        lines.append(
            f"| {name} | {window_text} | {elapsed:.2f} | {rate:,.0f} | {rate / baseline:.1f}x |"
        )
    lines += [
        "",
        "Regenerate with `.venv/bin/python benchmarks/bench_rabbitmq_publish.py`.",
        "",
    ]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text("\n".join(lines))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
