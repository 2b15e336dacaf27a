"""The reference worker: consumes stage queues, runs stages, stores outputs, forwards them.

It honours the factflow contract replay and recovery rely on:

* a message is acknowledged only after its outputs are stored and forwarded (confirmed), so a
  crash loses nothing; a redelivered message is recognised by its id and not processed twice;
* output names are deterministic, so re-processing overwrites rather than duplicates;
* an *end marker* tells the next stage how many inputs to expect, so completion is known
  however messages are interleaved or redelivered;
* an *init message* starts a stage from the stored artefacts it names (or from its sources);
* messages of an execution's current attempt are processed whatever its status (a cancelled
  replay's child still takes what was sent); those of an older attempt are dropped, which is
  how a rerun or recovery retires what the failed attempt left in the queues.
"""

from __future__ import annotations

__all__ = ["Worker"]

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from pydantic import ValidationError

from ..errors import ExecutionStoreError, FactflowReplayError, QueueError, StorageError
from ..executions import ExecutionRecord, ExecutionStore, StageStatus
from ..layout import artefact_key, stage_prefix
from ..messages import (
    ARTEFACT_TYPE,
    END_TYPE,
    INIT_TYPE,
    ArtefactHeaders,
    EndMarker,
    InitMessage,
    artefact_message_id,
    forward_message_id,
)
from ..queues.base import Delivery, OutgoingMessage, QueueConsumer, QueuePublisher
from ..snapshot import ConfigSnapshot, StageRef
from ..storage.base import ArtefactStore
from .stages import Input, Output, StageContext, resolve_stage

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Stage:
    """The stage of one execution attempt a message is for."""

    execution: ExecutionRecord
    snapshot: ConfigSnapshot
    route: str
    stage: str
    attempt: int

    @property
    def key(self) -> tuple[str, str, str, int]:
        return (self.execution.id, self.route, self.stage, self.attempt)


_INFRASTRUCTURE = (StorageError, QueueError, ExecutionStoreError)
#: Entries kept per cache: a long-lived worker sees many executions, memory must not grow.
_CACHE = 4096

K = TypeVar("K")
V = TypeVar("V")


class _Recent(OrderedDict[K, V]):
    """A dict that forgets its oldest entries beyond ``_CACHE`` (only caches live here)."""

    def __setitem__(self, key: K, value: V) -> None:
        super().__setitem__(key, value)
        self.move_to_end(key)
        while len(self) > _CACHE:
            self.popitem(last=False)


class Worker:
    """Runs stages for messages on ``queues`` until ``stop`` is set.

    One worker is single-threaded; run several processes (or hosts) for more throughput:
    every decision is made in the execution store, so workers need no coordination.
    """

    def __init__(
        self,
        queues: Sequence[str],
        *,
        artefacts: ArtefactStore,
        executions: ExecutionStore,
        publisher: QueuePublisher,
        consumer_factory: Callable[[], QueueConsumer],
        prefetch: int = 16,
    ) -> None:
        self.artefacts = artefacts
        self.executions = executions
        self.publisher = publisher
        self.consumer_factory = consumer_factory
        self.queues = list(dict.fromkeys(queues))
        self.prefetch = prefetch
        self._snapshots: _Recent[str, ConfigSnapshot] = _Recent()
        self._active: _Recent[tuple[str, int], set[tuple[str, str]]] = _Recent()
        self._running: _Recent[tuple[str, str, str, int], bool] = _Recent()
        self._failed: _Recent[tuple[str, str, str, int], bool] = _Recent()
        self._stop = threading.Event()
        self.handled = 0

    # -- loop -----------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Declare the queues and handle deliveries until ``stop`` is set."""
        self._stop = stop
        for queue in self.queues:
            self.publisher.declare_queue(queue)
        with self.consumer_factory() as consumer:
            for queue in self.queues:
                consumer.declare_queue(queue)
            log.info("worker consuming %s", ", ".join(self.queues))
            for delivery in consumer.consume(self.queues, stop=stop, prefetch=self.prefetch):
                self.handle(delivery)
        log.info("worker stopped after %d messages", self.handled)

    def handle(self, delivery: Delivery) -> None:
        """Process one delivery and settle it (ack, or nack for a retry later)."""
        try:
            settled = self._dispatch(delivery)
        except _INFRASTRUCTURE as exc:
            log.warning("message %s will be retried: %s", delivery.message_id, exc)
            delivery.nack(requeue=True)
            time.sleep(0.5)  # let the failing component recover before the redelivery
            return
        except (ValidationError, KeyError, ValueError, FactflowReplayError) as exc:
            log.error(  # noqa: TRY400 - the message says it all; a traceback adds nothing
                "message %s on %s is malformed, dead-lettered: %s",
                delivery.message_id,
                delivery.queue,
                exc,
            )
            delivery.nack(requeue=False)
            return
        if settled:
            delivery.ack()
        else:
            delivery.nack(requeue=True)
        self.handled += 1

    def _dispatch(self, delivery: Delivery) -> bool:
        if delivery.type == INIT_TYPE:
            return self._handle_init(InitMessage.model_validate_json(delivery.body))
        if delivery.type == END_TYPE:
            self._handle_end(EndMarker.model_validate_json(delivery.body))
            return True
        if delivery.type == ARTEFACT_TYPE:
            headers = ArtefactHeaders.from_headers(delivery.headers)
            self._handle_artefact(headers, delivery)
            return True
        raise ValueError(f"unknown message type {delivery.type!r}")

    # -- message kinds ----------------------------------------------------------------------

    def _live(self, execution_id: str, route: str, stage: str, attempt: int) -> _Stage | None:
        """The stage the message is for, or None when its attempt is over (stale)."""
        execution = self.executions.find_execution(execution_id)
        if execution is None:
            log.warning("dropping message for unknown execution %r", execution_id)
            return None
        if attempt != execution.attempt:
            log.debug("dropping stale message for %s attempt %d", execution_id, attempt)
            return None
        snapshot = self._snapshots.get(execution_id)
        if snapshot is None:
            source = f"snapshot of {execution_id!r}"
            snapshot = ConfigSnapshot.parse(execution.snapshot, source=source)
            self._snapshots[execution_id] = snapshot
        snapshot.resolve_stage(execution_id, stage, route=route)
        return _Stage(execution, snapshot, route, stage, attempt)

    def _handle_artefact(self, headers: ArtefactHeaders, delivery: Delivery) -> None:
        target = self._live(headers.execution_id, headers.route, headers.stage, headers.attempt)
        if target is not None:
            data = Input(headers.object_key, delivery.body, delivery.content_type)
            self._process(target, delivery.message_id, data)

    def _handle_end(self, marker: EndMarker) -> None:
        target = self._live(marker.execution_id, marker.route, marker.stage, marker.attempt)
        if target is not None:
            self.executions.set_inputs_expected(*target.key, marker.count)
            self._ensure_end_sent(target)

    def _handle_init(self, message: InitMessage) -> bool:
        target = self._live(message.execution_id, message.route, message.stage, message.attempt)
        if target is None:
            return True
        executions = self.executions
        log.info(
            "init %s: %s/%s of %s attempt %d",
            message.kind,
            target.route,
            target.stage,
            target.execution.id,
            target.attempt,
        )
        if message.input is None:  # a source stage: the init message is its one input
            executions.set_inputs_expected(*target.key, 1)
            self._process(target, message.message_id, None)
            return True
        source = message.input
        artefacts = self.artefacts
        count = 0
        keys = artefacts.list_keys(stage_prefix(source.execution_id, source.route, source.stage))
        for key, etag, data in artefacts.read_many(keys):
            count += 1
            message_id = artefact_message_id(source.execution_id, key, etag)
            if executions.is_processed(*target.key, message_id):
                continue
            if self._stop.is_set():
                return False  # requeued: the rest is processed after the restart
            if not self._process(target, message_id, Input(key, data)):
                return True  # the stage failed; the execution is FAILED
        executions.set_inputs_expected(*target.key, count)
        self._ensure_end_sent(target)
        return True

    # -- one input ----------------------------------------------------------------------------

    def _process(self, target: _Stage, message_id: str, data: Input | None) -> bool:
        """Run the stage on one input; False if the stage raised (and was marked FAILED)."""
        executions = self.executions
        execution_id = target.execution.id
        processed, status = executions.input_gate(*target.key, message_id)
        if processed:
            self._ensure_end_sent(target)
            return True
        if status is StageStatus.FAILED or target.key in self._failed:
            # The stage failed in this attempt (here or in another worker): its other inputs
            # are dropped, not run, so nothing downstream starts; a recovery restarts the stage
            # from storage.
            self._failed[target.key] = True
            return False
        if target.key not in self._running:
            executions.mark_stage_running(*target.key)
            self._running[target.key] = True
        config = target.snapshot.config.route(target.route).stage(target.stage)
        if config.callable is None:
            raise ValueError(
                f"stage {target.route}/{target.stage} has no callable: another deployment runs it"
            )
        function = resolve_stage(config.callable)
        context = StageContext(
            execution_id=execution_id,
            route=target.route,
            stage=target.stage,
            attempt=target.attempt,
            options=config.options,
            input=data,
            count=lambda name, by: executions.increment_counter(execution_id, name, by),
        )
        try:
            outputs = list(function(context))
        except Exception as exc:  # noqa: BLE001 - a stage's own failure is recorded, not raised
            error = f"{type(exc).__name__}: {exc}"
            log.warning(
                "stage %s/%s of %s failed: %s", target.route, target.stage, execution_id, error
            )
            executions.fail_stage(*target.key, error)
            self._failed[target.key] = True
            return False
        keys = self._store_and_forward(target, outputs)
        outcome = executions.record_processed(
            *target.key,
            message_id,
            artefacts=len(outputs),
            size=sum(len(o.data) for o in outputs),
            keys=keys,
        )
        if outcome.completed or not outcome.recorded:
            self._ensure_end_sent(target)
        return True

    def _store_and_forward(self, target: _Stage, outputs: list[Output]) -> list[str]:
        """Store every output, forward them (confirmed) to the next stage; return their keys."""
        execution_id = target.execution.id
        following = self._next_active(target)
        messages: list[OutgoingMessage] = []
        keys: list[str] = []
        for output in outputs:
            key = artefact_key(execution_id, target.route, target.stage, output.name)
            info = self.artefacts.write(key, output.data)
            keys.append(key)
            if following is None:
                continue
            headers = ArtefactHeaders(
                execution_id=execution_id,
                attempt=target.attempt,
                route=following[0],
                stage=following[1],
                source_execution_id=execution_id,
                source_route=target.route,
                source_stage=target.stage,
                object_key=key,
                etag=str(info.etag),  # a write always knows its etag
            )
            message_id = forward_message_id(execution_id, target.attempt, key)
            content_type = output.content_type
            messages.append(
                headers.message(output.data, content_type=content_type, message_id=message_id)
            )
        if following is not None and messages:
            queue = target.snapshot.config.route(following[0]).stage_queue(following[1])
            self.publisher.publish(queue, messages)
        return keys

    def _next_active(self, target: _Stage) -> tuple[str, str] | None:
        """The next stage if it takes part in this attempt (a rerun may stop at one stage)."""
        following = target.snapshot.config.next_stage(target.route, target.stage)
        if following is None:
            return None
        cache_key = (target.execution.id, target.attempt)
        active = self._active.get(cache_key)
        if active is None:
            active = {
                (row.route, row.stage)
                for row in self.executions.lineage(target.execution.id)
                if row.attempt == target.attempt
            }
            self._active[cache_key] = active
        return following if following in active else None

    def _ensure_end_sent(self, target: _Stage) -> None:
        """Once a stage succeeded, tell the next one how many inputs to expect (once)."""
        executions = self.executions
        row = executions.stage_lineage(target.execution.id, target.route, target.stage)
        if row is None or row.attempt != target.attempt or row.end_sent:
            return
        if row.status is not StageStatus.SUCCEEDED:
            return
        following = self._next_active(target)
        if following is not None:
            marker = EndMarker(
                execution_id=target.execution.id,
                attempt=target.attempt,
                route=following[0],
                stage=following[1],
                count=row.artefact_count,
                source=StageRef(
                    execution_id=target.execution.id, route=target.route, stage=target.stage
                ),
            )
            queue = target.snapshot.config.route(following[0]).stage_queue(following[1])
            self.publisher.publish(queue, [marker.message()])
        executions.mark_end_sent(*target.key)
        log.info(
            "stage %s/%s of %s succeeded: %d artefacts",
            target.route,
            target.stage,
            target.execution.id,
            row.artefact_count,
        )
