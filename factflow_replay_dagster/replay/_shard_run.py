"""Publishing one shard of a replay: its messages, confirms, saved position and progress.

A shard is a contiguous key range published in key order by one step (the whole replay when
it has one shard). Only what the broker confirmed counts; the position (the last key of the
contiguous confirmed prefix) is saved every ``progress_every`` confirms and every 2 s, so a
cancelled, failed or killed step resumes after it. When the broker starts or stops blocking
publishers, the position is saved and progress reported at once, with the reason
(``ReplayProgress.broker_blocked``).
"""

from __future__ import annotations

__all__ = ["ReplayStart", "ShardRun"]

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from ..errors import ArtefactNotFoundError, ReplayError
from ..executions import ExecutionStore, ReplayState
from ..messages import ArtefactEnvelope
from ..queues.base import OutgoingMessage, QueuePublisher, StopCallback
from ..storage.base import ArtefactStore
from .models import ReplayPlan, ReplayProgress, ShardPlan, ShardResult
from .planning import select_keys

log = logging.getLogger(__name__)

ProgressCallback = Callable[[ReplayProgress], None]
#: Progress is saved at least this often (seconds) while confirms arrive.
_SAVE_SECONDS = 2.0


@dataclass(frozen=True)
class ReplayStart:
    """A replay ready to publish: its plan (shards included), ids and rate. What the start
    of a replay hands to the steps that publish its shards."""

    replay_id: str
    child_execution_id: str
    plan: ReplayPlan
    rate: float | None = None
    resumed: bool = False

    @property
    def shard_rate(self) -> float | None:
        """The rate of one shard: the replay's, shared out between its shards."""
        return None if self.rate is None else self.rate / len(self.plan.shards)


class ShardRun:
    """The state of one shard's publishing: what has been confirmed, when it was saved."""

    def __init__(
        self,
        start: ReplayStart,
        shard: ShardPlan,
        *,
        artefacts: ArtefactStore,
        executions: ExecutionStore,
        publisher: QueuePublisher,
        progress_every: int,
        read_ahead: int,
        on_progress: ProgressCallback | None,
    ) -> None:
        self.start = start
        self.shard = shard
        self.artefacts = artefacts
        self.executions = executions
        self.publisher = publisher
        self.progress_every = progress_every
        self.read_ahead = read_ahead
        self.on_progress = on_progress
        self.confirmed = shard.already_confirmed
        self.bytes = 0
        self.last_key = shard.resume_after
        self.saved = self.confirmed
        self.saved_at = self.started = time.monotonic()
        self.missing: ArtefactNotFoundError | None = None
        #: Why the shard must stop: a save found the replay closed, or resumed, elsewhere.
        self.closed: str | None = None
        #: A resume took the replay over: this shard's process records nothing more.
        self.taken_over = False
        self.resent = 0
        self.broker_blocked: str | None = None
        self._blocked_at = 0.0
        # Who holds the replay now (its Dagster run and the process that started it): a
        # save that finds another holder means a resume took it over.
        record = executions.get_replay(start.replay_id)
        self._holder = (record.dagster_run_id, record.owner)
        # The replay's totals as this step knows them: the other shards as they were.
        shards = executions.replay_shards(start.replay_id)
        self._others = sum(s.confirmed for s in shards if s.shard != shard.index)
        self._others_bytes = sum(s.bytes_confirmed for s in shards if s.shard != shard.index)
        self.bytes = next((s.bytes_confirmed for s in shards if s.shard == shard.index), 0)

    # -- publishing -----------------------------------------------------------------------

    def publish(self, should_stop: StopCallback | None) -> ShardResult:
        """Publish the rest of the shard; CANCELLED if ``should_stop`` said so (position
        saved); raises the missing artefact or the broker's error, with every message sent
        answered, for the caller to save the position as it records the failure (a save here
        could fail too, and hide why the shard stopped).

        A save that finds the replay closed by another process (its Dagster run failed while
        this step process lived on, or its heartbeat was judged stale) or resumed by another
        run stops the shard at once and raises :class:`ReplayError`: a resume may already be
        publishing the rest. (A shard closed elsewhere that had confirmed all of its range
        succeeds: a resume then skips it.)
        """

        def stop() -> bool:
            return self.closed is not None or (should_stop is not None and should_stop())

        outcome = self.publisher.publish(
            self.start.plan.queue,
            self._messages(),
            on_confirmed=self._confirmed,
            should_stop=stop,
            rate=self.start.shard_rate,
            on_blocked=self._blocked,
        )
        self.resent = outcome.resent
        self.broker_blocked = None  # publishing is over, whatever the broker does now
        if self.missing is not None:
            raise self.missing
        if self.taken_over or (self.closed is not None and self.confirmed < self.shard.count):
            raise ReplayError(
                f"replay {self.start.replay_id!r} was {self.closed} by another process while "
                f"shard {self.shard.index} published; the shard stopped after "
                f"{self.confirmed} of {self.shard.count} confirmed, its position saved"
            )
        self.save()
        cancelled = outcome.stopped and self.confirmed < self.shard.count
        return ShardResult(
            replay_id=self.start.replay_id,
            index=self.shard.index,
            state="CANCELLED" if cancelled else "SUCCEEDED",
            confirmed=self.confirmed,
            total=self.shard.count,
            bytes=self.bytes,
            resent=self.resent,
            seconds=time.monotonic() - self.started,
        )

    def _confirmed(self, batch: Sequence[OutgoingMessage]) -> None:
        self.confirmed += len(batch)
        self.bytes += sum(len(message.body) for message in batch)
        self.last_key = batch[-1].position
        if self.confirmed - self.saved >= self.progress_every or (
            time.monotonic() - self.saved_at > _SAVE_SECONDS
        ):
            self.save()

    def _blocked(self, reason: str | None) -> None:
        """The broker started (``reason``) or stopped (None) blocking publishers."""
        self.broker_blocked = reason
        if reason is not None:
            self._blocked_at = time.monotonic()
            log.info("replay %s: the broker blocks publishing (%s)", self.start.replay_id, reason)
        else:
            waited = time.monotonic() - self._blocked_at
            log.info("replay %s: the broker unblocked after %.1f s", self.start.replay_id, waited)
        self.save()

    def _messages(self) -> Iterator[OutgoingMessage]:
        """The shard's artefact messages in key order, their bodies read ahead by the store.

        Only the key, etag and id are made per message; the shared headers once. A missing
        artefact ends the stream (so outstanding confirms still arrive) and is kept in
        ``missing`` to raise with its key.
        """
        plan, shard = self.start.plan, self.shard
        selected = select_keys(
            self.artefacts,
            plan.prefix,
            match=plan.match,
            limit=None,
            start_after=shard.resume_after or shard.start_after,
            stop_at=shard.stop_at,
        )
        envelope = ArtefactEnvelope(
            execution_id=self.start.child_execution_id,
            attempt=1,
            route=plan.to_route,
            stage=plan.target_stage,
            source_execution_id=plan.source_execution_id,
            source_route=plan.source_route,
            source_stage=plan.from_stage,
            replay_id=self.start.replay_id,
        )
        message = envelope.message
        try:
            for key, etag, body in self.artefacts.read_many(selected, concurrency=self.read_ahead):
                yield message(key, etag, body)
        except ArtefactNotFoundError as missing:
            self.missing = missing

    # -- bookkeeping ----------------------------------------------------------------------

    def save(self) -> None:
        """Save the position (if it moved) and report progress."""
        if self.last_key is not None and self.confirmed != self.saved:
            replay = self.executions.save_shard_progress(
                self.start.replay_id,
                self.shard.index,
                confirmed=self.confirmed,
                bytes_confirmed=self.bytes,
                last_confirmed_key=self.last_key,
                holder=self._holder,
            )
            if replay.state is not ReplayState.RUNNING:
                self.closed = f"marked {replay.state} (its run ended, or its heartbeat was stale)"
            elif (replay.dagster_run_id, replay.owner) != self._holder:
                self.closed = f"resumed (by Dagster run {replay.dagster_run_id})"
                self.taken_over = True
        self.saved = self.confirmed
        self.saved_at = time.monotonic()
        if self.on_progress is not None:
            self.on_progress(self.progress())

    def progress(self) -> ReplayProgress:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        return ReplayProgress(
            replay_id=self.start.replay_id,
            confirmed=self._others + self.confirmed,
            total=self.start.plan.count,
            bytes=self._others_bytes + self.bytes,
            rate=(self.confirmed - self.shard.already_confirmed) / elapsed,
            last_key=self.last_key,
            shard=self.shard.index,
            broker_blocked=self.broker_blocked,
        )
