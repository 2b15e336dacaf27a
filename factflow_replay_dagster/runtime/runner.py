"""Start executions and run workers until they finish: the reference runtime's entry points."""

from __future__ import annotations

__all__ = [
    "declare_queues",
    "run_pipeline",
    "run_until_finished",
    "start_execution",
    "stop_on_signals",
]

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from types import FrameType

from ..errors import FactflowReplayError
from ..executions import ExecutionRecord, ExecutionStore
from ..executions.statuses import FINISHED_STATUSES
from ..ids import new_id, validate_id
from ..messages import InitMessage
from ..queues.base import QueueConsumer, QueuePublisher
from ..snapshot import ConfigSnapshot
from ..storage.base import ArtefactStore
from .worker import Worker

log = logging.getLogger(__name__)


def declare_queues(publisher: QueuePublisher, snapshot: ConfigSnapshot) -> None:
    """Declare every queue of the pipeline as durable (idempotent)."""
    for queue in snapshot.config.queues():
        publisher.declare_queue(queue)


def start_execution(
    snapshot: ConfigSnapshot,
    *,
    executions: ExecutionStore,
    publisher: QueuePublisher,
    execution_id: str | None = None,
) -> ExecutionRecord:
    """Record a new execution with its snapshot and publish the init message of its source."""
    config = snapshot.config
    execution_id = (
        validate_id(execution_id, kind="execution") if execution_id else new_id(config.pipeline)
    )
    entry = config.entry_route()
    first = entry.stages[0].name
    record = executions.create_execution(execution_id, snapshot, origin="run")
    attempt = executions.begin_attempt(execution_id, config.downstream(entry.name, first))
    declare_queues(publisher, snapshot)
    init = InitMessage(
        kind="start",
        execution_id=execution_id,
        route=entry.name,
        stage=first,
        attempt=attempt,
        reason="pipeline run",
    )
    publisher.publish(entry.stage_queue(first), [init.message()])
    log.info("execution %s of %s v%s started", execution_id, config.pipeline, config.version)
    return record


def run_until_finished(
    execution_id: str,
    queues: Sequence[str],
    *,
    artefacts: ArtefactStore,
    executions: ExecutionStore,
    publisher: QueuePublisher,
    consumer_factory: Callable[[], QueueConsumer],
    timeout: float = 600.0,
    stop: threading.Event | None = None,
) -> ExecutionRecord:
    """Run a worker on ``queues`` until the execution finishes (or ``timeout``, or ``stop``)."""
    stop = stop or threading.Event()
    done = threading.Event()
    deadline = time.monotonic() + timeout

    def watch() -> None:
        while not stop.is_set():
            record = executions.get_execution(execution_id)
            if record.status in FINISHED_STATUSES or time.monotonic() > deadline:
                done.set()
                stop.set()
                return
            time.sleep(0.2)

    watcher = threading.Thread(target=watch, name=f"watch-{execution_id}", daemon=True)
    watcher.start()
    Worker(
        queues,
        artefacts=artefacts,
        executions=executions,
        publisher=publisher,
        consumer_factory=consumer_factory,
    ).run(stop)
    watcher.join(timeout=5)
    record = executions.get_execution(execution_id)
    if record.status not in FINISHED_STATUSES and done.is_set():
        raise FactflowReplayError(
            f"execution {execution_id!r} did not finish within {timeout:.0f} s "
            f"(status {record.status}); its workers can be restarted to continue"
        )
    return record


def run_pipeline(
    snapshot: ConfigSnapshot,
    *,
    artefacts: ArtefactStore,
    executions: ExecutionStore,
    publisher: QueuePublisher,
    consumer_factory: Callable[[], QueueConsumer],
    execution_id: str | None = None,
    timeout: float = 600.0,
    stop: threading.Event | None = None,
) -> ExecutionRecord:
    """Start an execution and run it to completion in this process."""
    record = start_execution(
        snapshot, executions=executions, publisher=publisher, execution_id=execution_id
    )
    return run_until_finished(
        record.id,
        snapshot.config.queues(),
        artefacts=artefacts,
        executions=executions,
        publisher=publisher,
        consumer_factory=consumer_factory,
        timeout=timeout,
        stop=stop,
    )


@contextlib.contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """Set ``stop`` on SIGINT/SIGTERM (the worker finishes its current message first)."""

    def handler(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s, stopping after the current message", signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
