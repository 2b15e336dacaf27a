"""The S3 store through obstore against the previous boto3 store, in the same run on one
SeaweedFS: listing rate and ``read_many`` throughput, and the client's CPU per object.

Usage: ``python benchmarks/bench_s3_store.py [--objects 5000] [--body-bytes 1024] [--rounds 3]``.
The objects are written once; then each round measures every operation on both stores,
interleaved, and the table reports medians. CPU is this process's user+sys time (obstore's
Tokio threads included; SeaweedFS runs in its own process). obstore alone (raw listing, raw
gets on a thread pool) is measured too, as the ceiling of the store around it. The table goes to
``benchmarks/results/s3_store.md``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import obstore
from boto3_store import Boto3ArtefactStore
from support.servers.seaweedfs import SeaweedFSServer

from factflow_replay_dagster.layout import artefact_key
from factflow_replay_dagster.storage._s3_client import build_s3_store
from factflow_replay_dagster.storage.base import ArtefactStore
from factflow_replay_dagster.storage.s3 import S3ArtefactStore

if TYPE_CHECKING:
    from obstore.store import S3Store

RESULTS = Path(__file__).parent / "results" / "s3_store.md"
PREFIX = "executions/bench/ingest/parse/"
CONCURRENCY = (8, 16)


def measure(work: Callable[[], int]) -> tuple[float, float, int]:
    """Seconds, CPU seconds and the count ``work`` returns."""
    wall, cpu = time.perf_counter(), time.process_time()
    count = work()
    return time.perf_counter() - wall, time.process_time() - cpu, count


def ceilings(raw: S3Store, keys: list[str]) -> dict[str, Callable[[], int]]:
    """obstore alone on the same bucket and configuration: what the store could reach."""

    def get(key: str) -> int:
        return len(obstore.get(raw, key).bytes())

    def read_all(concurrency: int) -> Callable[[], int]:
        def work() -> int:
            with ThreadPoolExecutor(concurrency) as pool:
                return sum(size > 0 for size in pool.map(get, keys))

        return work

    return {
        "list (ObjectInfo)": lambda: sum(map(len, obstore.list(raw, PREFIX, chunk_size=1000))),
        "list_keys": lambda: sum(map(len, obstore.list(raw, PREFIX, chunk_size=1000))),
        **{f"read_many, concurrency {c}": read_all(c) for c in CONCURRENCY},
    }


def operations(store: ArtefactStore, keys: list[str]) -> dict[str, Callable[[], int]]:
    def read_all(concurrency: int) -> Callable[[], int]:
        return lambda: sum(len(o.data) > 0 for o in store.read_many(keys, concurrency=concurrency))

    return {
        "list (ObjectInfo)": lambda: sum(1 for _ in store.list(PREFIX)),
        "list_keys": lambda: sum(1 for _ in store.list_keys(PREFIX)),
        **{f"read_many, concurrency {c}": read_all(c) for c in CONCURRENCY},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--objects", type=int, default=5000)
    parser.add_argument("--body-bytes", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    body = b"x" * args.body_bytes
    keys = [
        artefact_key("bench", "ingest", "parse", f"doc-{i:07d}.json") for i in range(args.objects)
    ]
    samples: dict[tuple[str, str], list[tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-s3-store-") as tmp:
        server = SeaweedFSServer(Path(tmp) / "seaweedfs")
        server.start()
        client = server.client()
        try:
            bucket = server.create_bucket("bench-s3-store")
            obstore_store = S3ArtefactStore(server.config(), bucket, prefix="p")
            runs = {
                "obstore": operations(obstore_store, keys),
                "boto3": operations(Boto3ArtefactStore(client, bucket, prefix="p"), keys),
                "raw": ceilings(build_s3_store(server.config(), bucket, prefix="p"), keys),
            }
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(lambda key: obstore_store.write(key, body), keys))
            for round_ in range(args.rounds):
                for label, run in runs.items():
                    for name, work in run.items():
                        seconds, cpu, count = measure(work)
                        assert count == len(keys), (label, name, count)
                        samples.setdefault((name, label), []).append((seconds, cpu))
                        print(f"round {round_ + 1} {label:<8} {name:<26} {count / seconds:9,.0f}/s")
        finally:
            client.close()
            server.stop()
    write(samples, args.objects, len(body), args.rounds)


def write(
    samples: dict[tuple[str, str], list[tuple[float, float]]], count: int, size: int, rounds: int
) -> None:
    def rate(name: str, label: str) -> float:
        return count / statistics.median(s for s, _ in samples[name, label])

    def cpu(name: str, label: str) -> float:
        return 1000 * statistics.median(c for _, c in samples[name, label]) / count * 1000

    load = os.getloadavg()[0]
    lines = [
        "# The S3 store: obstore against the previous boto3 store",
        "",
        f"{count} objects of {size} bytes on one SeaweedFS (loopback), both stores in the same "
        f"run, interleaved; medians of {rounds} rounds. Objects/s (keys/s for listings) and the "
        "client's CPU (user+sys, all threads) in ms per 1,000 objects.",
        "",
        f"Machine: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {platform.platform()}; "
        f"{os.cpu_count()} CPUs; Python {platform.python_version()}; load average {load:.2f} "
        "at the end (shared machine, SeaweedFS on the same cores: expect +-50% between runs).",
        "",
        "| operation | obstore store /s | boto3 store /s | obstore / boto3 | obstore CPU "
        "| boto3 CPU | obstore alone /s | store / alone |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in dict.fromkeys(name for name, _ in samples):
        fast, slow, raw = (rate(name, label) for label in ("obstore", "boto3", "raw"))
        lines.append(
            f"| {name} | {fast:,.0f} | {slow:,.0f} | {fast / slow:.1f}x "
            f"| {cpu(name, 'obstore'):.0f} ms | {cpu(name, 'boto3'):.0f} ms "
            f"| {raw:,.0f} | {fast / raw:.2f} |"
        )
    lines += [
        "",
        '"obstore alone": `obstore.list` (chunks of 1,000) and `obstore.get` on a thread pool '
        "of the same size, same bucket and configuration, no store around them: the ceiling "
        "the store's listing emulation and in-order read-ahead are measured against.",
        "",
        "Regenerate with `scripts/bench` (or `.venv/bin/python benchmarks/bench_s3_store.py`).",
    ]
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text("\n".join(lines) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
