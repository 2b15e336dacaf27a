"""What the orchestrator and its child processes share: data sets, lab addresses, settings, meters.

Every project component a measurement uses is built through ``factflow_replay_dagster.connect``
from :func:`settings`, so the store and publisher implementations can change underneath.
"""

from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Confirms in flight, for the pika ceilings and for the project's publisher alike.
WINDOW = 1000
PIPELINE, SOURCE_ROUTE, FROM_STAGE, TO_ROUTE = "news", "ingest", "parse", "enrich"
STORAGES = ("local", "s3")
_TICK = os.sysconf("SC_CLK_TCK")

#: A measurement's context, sent to child processes as JSON: see ``lab.Lab.context``.
Context = dict[str, Any]


@dataclass(frozen=True)
class Dataset:
    """``count`` stored objects of ``size`` bytes, one parent execution per storage."""

    count: int
    size: int

    @property
    def label(self) -> str:
        unit = next(
            (
                f"{self.size // n} {u}"
                for n, u in ((1 << 20, "MiB"), (1 << 10, "KiB"))
                if self.size >= n and self.size % n == 0
            ),
            f"{self.size} B",
        )
        return f"{self.count:,} × {unit}"

    @property
    def slug(self) -> str:
        return f"{self.count}x{self.size}"

    def parent(self, storage: str) -> str:
        """The registered parent execution holding this data set in ``storage``."""
        return f"bench-{storage}-{self.count}-{self.size}"

    def name(self, index: int) -> str:
        return f"doc-{index:07d}.json"

    def body(self, index: int, filler: bytes) -> bytes:
        """Distinct bodies (distinct etags and message ids) that cost nothing to make."""
        head = b"%07d" % index
        return head + filler[len(head) : self.size]


def settings(
    ctx: Context, *, storage: str, broker: str, window: int = WINDOW, queue_file: str = ""
) -> Any:
    """The project's settings for ``storage`` (local, s3) and ``broker`` (rabbitmq, embedded)."""
    from factflow_replay_dagster.settings import Settings

    s3 = ctx["s3"] or {}
    broker_url = ctx["rabbitmq_url"] if broker == "rabbitmq" else f"embedded://{queue_file}"
    storage_url = ctx["local_url"] if storage == "local" else f"s3://{s3['bucket']}"
    return Settings.from_values(
        home=ctx["home"],
        storage_url=storage_url,
        broker_url=broker_url,
        database_url=ctx["database_url"],
        aws_endpoint_url=s3.get("endpoint"),
        aws_access_key_id=s3.get("key"),
        aws_secret_access_key=s3.get("secret"),
        aws_region=s3.get("region", "us-east-1"),
        confirm_window=window,
    )


def process_cpu(pid: int | None) -> float:
    """CPU seconds (user + system, every thread) of process ``pid`` so far; 0 if unknown."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Meter:
    """Times a block: wall seconds, this process's CPU and the broker's (``beam.smp``) CPU."""

    def __init__(self, ctx: Context) -> None:
        self.beam_pid: int | None = ctx.get("beam_pid")
        self.started = self.seconds = self.cpu_client = self.cpu_broker = 0.0

    def __enter__(self) -> Meter:
        self._cpu, self._broker = own_cpu(), process_cpu(self.beam_pid)
        self.started = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.started
        self.cpu_client = own_cpu() - self._cpu
        self.cpu_broker = process_cpu(self.beam_pid) - self._broker

    def result(
        self, objects: int, size: int, *, first_confirm: float | None = None, **extra: Any
    ) -> dict[str, Any]:
        """One repetition's figures (``first_confirm`` is an absolute perf_counter time)."""
        return {
            "seconds": self.seconds,
            "objects": objects,
            "bytes": objects * size,
            "first_confirm": None if first_confirm is None else first_confirm - self.started,
            "cpu_client": self.cpu_client,
            "cpu_broker": self.cpu_broker,
            **extra,
        }


class FirstConfirmProbe:
    """Wraps a publisher built by ``connect`` and timestamps ``on_confirmed`` calls.

    Everything else is delegated, so it keeps working when the publisher changes; ``marks``
    (time, count) are kept when ``track`` is set, for the rate-limit row.
    """

    def __init__(self, inner: Any, *, track: bool = False) -> None:
        self.inner = inner
        self.first: float | None = None
        self.track = track
        self.marks: list[tuple[float, int]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def __enter__(self) -> FirstConfirmProbe:
        return self

    def __exit__(self, *exc: object) -> None:
        self.inner.close()

    def publish(self, queue: str, messages: Any, *args: Any, **kwargs: Any) -> Any:
        downstream = kwargs.pop("on_confirmed", None)

        def confirmed(batch: Any) -> None:
            now = time.perf_counter()
            if self.first is None:
                self.first = now
            if self.track and downstream is not None:
                self.marks.append((now, len(batch)))
            if downstream is not None:
                downstream(batch)

        return self.inner.publish(queue, messages, *args, on_confirmed=confirmed, **kwargs)
