"""Issue 14's rows: one replay cut into 1, 2 or 4 shards, each published by a process of its
own, into the route's one queue or into one queue per shard.

The measurement does what ``replay_job`` on the multiprocess executor does, without Dagster:
``start`` (plan, replay and shards recorded) here, one spawned process per shard calling
``publish_shard`` with components of its own, then ``finish`` (the end marker) here. Timed
from the plan to the end marker; the processes are started and their imports done before
(Dagster's own step start-up is the job rows' overhead, not the shards').

"One queue per shard" is the broker's side of a deployment that spreads a stage over several
queues: the replay publishes into one route's queue, so this row renames each shard's queue
(``<queue>.shard-<n>``) inside the measurement, to show what the single queue costs.
"""

from __future__ import annotations

import multiprocessing
import time
from typing import Any

from factflow_replay_dagster.connect import (
    open_artefact_store,
    open_execution_store,
    open_publisher,
)
from factflow_replay_dagster.replay import ReplayRequest

from .common import FROM_STAGE, TO_ROUTE, Context, Dataset, Meter, own_cpu, settings
from .project import make_service


class _ShardQueue:
    """A publisher that sends a shard's messages into a queue of the shard's own."""

    def __init__(self, inner: Any, queue: str) -> None:
        self.inner = inner
        self.queue = queue

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def publish(self, queue: str, messages: Any, *args: Any, **kwargs: Any) -> Any:
        return self.inner.publish(self.queue, messages, *args, **kwargs)


def shard_queue(queue: str, index: int) -> str:
    return f"{queue}.shard-{index}"


def _ready(_: object) -> None:
    """Run in each process before timing: this module (and the package) imported. The pause
    keeps one process from taking every task, so each imports."""
    time.sleep(0.5)


def _publish_shard(ctx: Context, storage: str, start: Any, index: int, per_queue: bool) -> Any:
    """One shard in a spawned process: what a ``publish_shard`` step does. Returns the
    confirmed count, when it began and began publishing, when it ended, and its CPU."""
    cpu = own_cpu()
    cfg = settings(ctx, storage=storage, broker="rabbitmq")
    shard = start.plan.shards[index]
    began = time.perf_counter()
    with (
        open_artefact_store(cfg) as artefacts,
        open_execution_store(cfg) as executions,
        open_publisher(cfg) as publisher,
    ):
        own = shard_queue(start.plan.queue, index)
        sink = _ShardQueue(publisher, own) if per_queue else publisher
        published = time.perf_counter()
        result = make_service(artefacts, executions, sink, cfg).publish_shard(start, shard)
    return result.confirmed, began, published, time.perf_counter(), own_cpu() - cpu


def sharded(
    ctx: Context, *, storage: str, count: int, size: int, shards: int, per_queue: bool
) -> dict[str, Any]:
    """Replay the data set's parent in ``shards`` shards on as many processes."""
    data = Dataset(count, size)
    cfg = settings(ctx, storage=storage, broker="rabbitmq")
    request = ReplayRequest(
        source_execution_id=data.parent(storage),
        from_stage=FROM_STAGE,
        to_route=TO_ROUTE,
        shards=shards,
    )
    spawn = multiprocessing.get_context("spawn")
    with (
        open_artefact_store(cfg) as artefacts,
        open_execution_store(cfg) as executions,
        open_publisher(cfg) as publisher,
        spawn.Pool(shards) as pool,
    ):
        pool.map(_ready, range(shards), chunksize=1)
        queues = [shard_queue(ctx["queue"], i) for i in range(shards)] if per_queue else []
        for queue in queues:
            publisher.declare_queue(queue)
        service = make_service(artefacts, executions, publisher, cfg)
        with Meter(ctx) as meter:
            start = service.start(request)
            assert start is not None
            jobs = [
                pool.apply_async(_publish_shard, (ctx, storage, start, i, per_queue))
                for i in range(shards)
            ]
            done = [job.get() for job in jobs]
            service.finish(start)
        assert sum(d[0] for d in done) == count, done
        _delete(ctx, queues)
    publishing = max(d[3] for d in done) - min(d[2] for d in done)
    return meter.result(
        count,
        size,
        # The shards' own CPU (each measured in its process) on top of this process's.
        cpu_client=meter.cpu_client + sum(d[4] for d in done),
        publish_seconds=publishing,
        publish_rate=count / publishing,
        shards=shards,
    )


def _delete(ctx: Context, queues: list[str]) -> None:
    if not queues:
        return
    import pika

    connection = pika.BlockingConnection(pika.URLParameters(ctx["rabbitmq_url"]))
    try:
        channel = connection.channel()
        for queue in queues:
            channel.queue_delete(queue)
    finally:
        connection.close()
