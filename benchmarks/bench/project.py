"""This project's paths: ``DetachedReplayService`` and ``replay_job`` in-process, its publisher
alone per confirm window, the embedded queue, and a ``rate``-limited replay.

Components come only from ``factflow_replay_dagster.connect`` (built from ``common.settings``)
and the service is built only by :func:`make_service`, so the fast path can change the store,
the publisher and the service's keywords without touching the rest of the harness.
"""

from __future__ import annotations

import tempfile
import threading
from typing import Any

from factflow_replay_dagster.connect import (
    open_artefact_store,
    open_consumer,
    open_execution_store,
    open_publisher,
)
from factflow_replay_dagster.replay import DetachedReplayService, ReplayRequest

from .broker import base_headers
from .common import FROM_STAGE, TO_ROUTE, Context, Dataset, FirstConfirmProbe, Meter, settings


def make_service(artefacts: Any, executions: Any, publisher: Any, cfg: Any) -> Any:
    """The one place the harness constructs the service (its keywords may be renamed)."""
    return DetachedReplayService(
        artefacts=artefacts,
        executions=executions,
        publisher=publisher,
        progress_every=cfg.progress_every,
        stale_after=cfg.replay_stale_seconds,
    )


def _request(parent: str, **extra: Any) -> dict[str, Any]:
    fields = {"source_execution_id": parent, "from_stage": FROM_STAGE, "to_route": TO_ROUTE}
    return {**fields, **{k: v for k, v in extra.items() if v is not None}}


def _declare(cfg: Any, queue: str) -> None:
    with open_publisher(cfg) as publisher:
        publisher.declare_queue(queue)


def service(
    ctx: Context,
    *,
    storage: str,
    broker: str,
    count: int,
    size: int,
    queue_file: str = "",
    rate: float | None = None,
    limit: int | None = None,
) -> dict[str, Any]:
    """Replay the data set's parent with the plain service, plan included in the time."""
    data = Dataset(count, size)
    cfg = settings(ctx, storage=storage, broker=broker, queue_file=queue_file)
    if broker == "embedded":
        _declare(cfg, ctx["queue"])
    expected = limit or count
    with (
        open_artefact_store(cfg) as artefacts,
        open_execution_store(cfg) as executions,
        FirstConfirmProbe(open_publisher(cfg), track=rate is not None) as publisher,
    ):
        replay = make_service(artefacts, executions, publisher, cfg)
        request = ReplayRequest(**_request(data.parent(storage), rate=rate, limit=limit))
        with Meter(ctx) as meter:
            result = replay.run(request)
    assert result.state == "SUCCEEDED", result
    assert result.confirmed == expected, result
    figures = meter.result(expected, size, first_confirm=publisher.first)
    if rate is not None:
        figures.update(_pacing(publisher.marks, rate))
    return figures


def _pacing(marks: list[tuple[float, int]], target: float) -> dict[str, Any]:
    """Achieved rate between the first and the last confirm, and the worst 5-second window."""
    start, end = marks[0][0], marks[-1][0]
    sent = sum(n for _, n in marks[1:])
    achieved = sent / (end - start)
    windows = []
    edge = start
    while edge + 5 <= end:
        windows.append(sum(n for t, n in marks if edge < t <= edge + 5) / 5)
        edge += 5
    worst = max((abs(w / target - 1) for w in windows), default=0.0)
    return {
        "target_rate": target,
        "achieved_rate": achieved,
        "worst_5s_error": worst,
        "held_seconds": end - start,
    }


def job(
    ctx: Context, *, storage: str, broker: str, count: int, size: int, queue_file: str = ""
) -> dict[str, Any]:
    """Build the definitions and run ``replay_job`` in-process on a temporary instance."""
    import dagster as dg

    from factflow_replay_dagster.defs import build_definitions
    from factflow_replay_dagster.defs.resources import QueueResource

    data = Dataset(count, size)
    cfg = settings(ctx, storage=storage, broker=broker, queue_file=queue_file)
    if broker == "embedded":
        _declare(cfg, ctx["queue"])
    probes: list[FirstConfirmProbe] = []
    original = QueueResource.open_publisher

    def probed(self: Any) -> Any:  # this child process only: see FirstConfirmProbe
        probes.append(FirstConfirmProbe(original(self)))
        return probes[-1]

    QueueResource.open_publisher = probed  # type: ignore[method-assign]
    with tempfile.TemporaryDirectory(prefix="bench-dagster-") as home:
        instance = dg.DagsterInstance.local_temp(home)
        with Meter(ctx) as meter:
            defs = build_definitions(cfg)
            outcome = defs.resolve_job_def("replay_job").execute_in_process(
                run_config=_request(data.parent(storage)), instance=instance
            )
        instance.dispose()
    result = outcome.output_for_node("finish_replay")
    assert result.state == "SUCCEEDED", result
    assert result.confirmed == count, result
    first = next((p.first for p in probes if p.first is not None), None)
    return meter.result(count, size, first_confirm=first)


def publisher_window(ctx: Context, *, count: int, size: int, window: int) -> dict[str, Any]:
    """The project's publisher alone: prebuilt messages, confirm window ``window``."""
    from .broker import wire  # the same bytes and headers as the ceiling

    parent = Dataset(count, size).parent("ceiling")
    base = base_headers(parent)
    messages = [
        _outgoing(wire(parent, base, f"k/{i:07d}", f"{i:032x}", bytes(size))) for i in range(count)
    ]
    cfg = settings(ctx, storage="local", broker="rabbitmq", window=window)
    with FirstConfirmProbe(open_publisher(cfg)) as publisher:
        publisher.check_queue(ctx["queue"])  # connect before timing
        with Meter(ctx) as meter:
            outcome = publisher.publish(ctx["queue"], messages, on_confirmed=lambda b: None)
    assert outcome.confirmed == count
    return meter.result(count, size, first_confirm=publisher.first)


def _outgoing(message: tuple[bytes, Any]) -> Any:
    from factflow_replay_dagster.queues.base import OutgoingMessage

    body, props = message
    return OutgoingMessage(
        message_id=props.message_id,
        body=body,
        headers=props.headers,
        content_type=props.content_type,
        type=props.type,
        position=props.headers["factflow-object-key"],
    )


def embedded(
    ctx: Context, *, count: int, size: int, queue_file: str, prefetch: int
) -> dict[str, Any]:
    """Publish ``count`` durable messages into a fresh embedded queue, then consume and ack
    them all with a consumer from ``connect`` (``prefetch`` claimed per transaction)."""
    parent = Dataset(count, size).parent("ceiling")
    cfg = settings(ctx, storage="local", broker="embedded", queue_file=queue_file)
    from .broker import wire

    base = base_headers(parent)
    messages = [
        _outgoing(wire(parent, base, f"k/{i:07d}", f"{i:032x}", bytes(size))) for i in range(count)
    ]
    queue = ctx["queue"]
    _declare(cfg, queue)
    with open_publisher(cfg) as publisher, Meter(ctx) as publishing:
        assert publisher.publish(queue, messages).confirmed == count
    stop = threading.Event()
    with open_consumer(cfg) as consumer, Meter(ctx) as consuming:
        for received, delivery in enumerate(
            consumer.consume([queue], stop=stop, prefetch=prefetch), start=1
        ):
            delivery.ack()
            if received == count:
                stop.set()
    figures = publishing.result(count, size)
    figures["consume_seconds"] = consuming.seconds
    figures["consume_rate"] = count / consuming.seconds
    figures["cpu_client"] += consuming.cpu_client
    return figures
