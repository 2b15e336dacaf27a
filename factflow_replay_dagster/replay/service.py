"""The detached replay service: plan, create the child execution, publish with confirms, resume.

Plain Python with no Dagster import; the Dagster job, the CLI and tests all drive this class.
"""

from __future__ import annotations

__all__ = ["DetachedReplayService"]

import dataclasses
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Literal

from ..errors import (
    ArtefactNotFoundError,
    FactflowReplayError,
    InvalidInputError,
    InvalidStateError,
    ReplayError,
    UnknownReplayError,
)
from ..executions import ExecutionStatus, ExecutionStore, ReplayRecord, ReplaySource, ReplayState
from ..messages import ArtefactEnvelope, EndMarker
from ..queues.base import OutgoingMessage, QueuePublisher, StopCallback
from ..settings import DEFAULTS
from ..snapshot import ConfigSnapshot, StageRef
from ..storage.base import ArtefactStore
from .models import (
    ReplayPlan,
    ReplayProgress,
    ReplayRequest,
    ReplayResult,
    new_child_execution_id,
    new_replay_id,
)
from .planning import CheckedReplay, check_replay, plan_replay, select_keys

log = logging.getLogger(__name__)

ProgressCallback = Callable[[ReplayProgress], None]
_RESUMABLE = {ReplayState.PLANNED, ReplayState.CANCELLED, ReplayState.FAILED}
#: Who publishes, as the replay record shows it: this host and process.
_OWNER = f"{socket.gethostname()} pid {os.getpid()}"
_SAME_ON_RESUME = ("source_execution_id", "from_stage", "to_route", "match", "limit")
#: What a resume that does not say otherwise keeps from the replay it continues.
_KEPT_ON_RESUME = ("rate", "reason", "source_route")


class _Heartbeat:
    """Says the replay's process is alive, from a thread, every ``every`` seconds while it
    publishes (also while the broker blocks or a rate holds it back): a replay whose record
    stops beating was killed, and can be resumed (see ``fail_stale_replays``)."""

    def __init__(self, executions: ExecutionStore, replay_id: str, *, every: float) -> None:
        self._executions = executions
        self._replay_id = replay_id
        self._every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._beat, name=f"heartbeat-{replay_id}", daemon=True
        )

    def __enter__(self) -> None:
        self._thread.start()

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=self._every + 5)

    def _beat(self) -> None:
        while not self._stop.wait(self._every):
            try:
                self._executions.beat_replay(self._replay_id)
            except FactflowReplayError as exc:  # the publish path fails on its next save
                log.warning("replay %s: heartbeat not saved: %s", self._replay_id, exc)


class _Run:
    """One run of a replay: its plan and ids, what has been confirmed, when it was saved."""

    def __init__(
        self, plan: ReplayPlan, record: ReplayRecord, on_progress: ProgressCallback | None
    ) -> None:
        if record.child_execution_id is None:
            raise InvalidStateError(f"replay {record.replay_id!r} has no child execution")
        self.plan = plan
        self.replay_id = record.replay_id
        self.child_id = record.child_execution_id
        self.on_progress = on_progress
        self.confirmed = record.confirmed
        self.bytes = record.bytes_confirmed
        self.last_key = record.last_confirmed_key
        self.saved = record.confirmed
        self.saved_at = self.started = time.monotonic()
        self.missing: ArtefactNotFoundError | None = None
        self.resent = 0

    def result(self, state: Literal["SUCCEEDED", "CANCELLED"]) -> ReplayResult:
        return ReplayResult(
            state=state,
            plan=self.plan,
            replay_id=self.replay_id,
            child_execution_id=self.child_id,
            confirmed=self.confirmed,
            total=self.plan.count,
            bytes=self.bytes,
            resent=self.resent,
            seconds=time.monotonic() - self.started,
            last_confirmed_key=self.last_key,
        )

    def progress(self) -> ReplayProgress:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        return ReplayProgress(
            replay_id=self.replay_id,
            confirmed=self.confirmed,
            total=self.plan.count,
            bytes=self.bytes,
            rate=(self.confirmed - self.plan.already_confirmed) / elapsed,
            last_key=self.last_key,
        )


def _continuing(request: ReplayRequest, record: ReplayRecord) -> ReplayRequest:
    """A resume's request: what it leaves unset (the rate, the reason) is what the replay
    was started with; what it sets (say, a new rate) applies from now on."""
    stored = ReplayRequest.model_validate(record.request)
    kept = {
        name: getattr(stored, name)
        for name in _KEPT_ON_RESUME
        if getattr(request, name) is None and getattr(stored, name) is not None
    }
    return request.model_copy(update=kept) if kept else request


class DetachedReplayService:
    """Replays a parent execution's stored artefacts of one stage into a route's queue.

    A new child execution records where its input came from (:class:`ReplaySource`). The
    route resolves from the parent's snapshot; everything is checked before the first
    publish; every message is confirmed; progress is saved so a cancelled or failed replay
    resumes after the last confirmed artefact.
    """

    def __init__(
        self,
        *,
        artefacts: ArtefactStore,
        executions: ExecutionStore,
        publisher: QueuePublisher,
        progress_every: int = DEFAULTS.progress_every,
        read_ahead: int = 16,
        stale_after: float = DEFAULTS.replay_stale_seconds,
    ) -> None:
        self.artefacts = artefacts
        self.executions = executions
        self.publisher = publisher
        self.progress_every = progress_every
        self.read_ahead = read_ahead
        self.stale_after = stale_after

    def check(
        self, request: ReplayRequest, *, resume_replay_id: str | None = None
    ) -> CheckedReplay:
        """What can be refused without listing storage (:func:`check_replay`), the replay a
        resume continues, and a child execution id that is already taken; nothing is created
        or published. What an HTTP request checks before it submits a run."""
        resume = self._resume_target(request, resume_replay_id)
        checked = check_replay(request, executions=self.executions, publisher=self.publisher)
        child = request.child_execution_id
        if resume is None and child is not None and self.executions.find_execution(child):
            raise InvalidStateError(f"execution {child!r} already exists")
        return dataclasses.replace(checked, resumes=resume)

    def plan(self, request: ReplayRequest, *, resume_replay_id: str | None = None) -> ReplayPlan:
        """Resolve, check and list (for a resume: what is left); publish and create nothing."""
        plan, _ = self._plan(request, self._resume_target(request, resume_replay_id))
        return plan

    def run(
        self,
        request: ReplayRequest,
        *,
        plan: ReplayPlan | None = None,
        resume_replay_id: str | None = None,
        should_stop: StopCallback | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> ReplayResult:
        """Plan (unless ``plan`` is a fresh one for this request), then publish every planned
        artefact, or only the rest when resuming.

        Returns SUCCEEDED, CANCELLED (``should_stop`` said so; the position is saved) or
        DRY_RUN; raises :class:`FactflowReplayError` subclasses on failure, after saving
        progress and marking the replay and its child execution FAILED with the reason.

        A ``request.replay_id`` naming an existing cancelled or failed replay resumes it, so
        running the same request again (a Dagster run retry) never re-sends what was confirmed.
        """
        resume = self._resume_target(request, resume_replay_id)
        if resume is not None:
            request = _continuing(request, resume)
        if plan is None:
            plan, snapshot = self._plan(request, resume)
        else:
            snapshot = self.executions.snapshot_of(plan.source_execution_id)
        if request.dry_run:
            return ReplayResult(state="DRY_RUN", plan=plan, total=plan.count, bytes=plan.bytes)
        record = self._create(request, plan, snapshot) if resume is None else self._reopen(resume)
        run = _Run(plan, record, on_progress)
        self.executions.set_replay_state(
            run.replay_id,
            ReplayState.RUNNING,
            child_execution_id=run.child_id,
            dagster_run_id=request.dagster_run_id,
            owner=_OWNER,
        )
        log.info(
            "replay %s: %d artefacts of %s/%s from %s into %s (queue %s)%s",
            run.replay_id,
            plan.count,
            plan.source_route,
            plan.from_stage,
            plan.source_execution_id,
            plan.to_route,
            plan.queue,
            f", resuming after {run.confirmed}" if resume else "",
        )
        try:
            with _Heartbeat(self.executions, run.replay_id, every=self.stale_after / 10):
                return self._publish(run, should_stop, rate=request.rate)
        except FactflowReplayError as exc:
            self._save(run)
            self._fail(run, str(exc))
            raise

    def resume(
        self,
        replay_id: str,
        *,
        should_stop: StopCallback | None = None,
        on_progress: ProgressCallback | None = None,
        dagster_run_id: str | None = None,
    ) -> ReplayResult:
        """Continue a cancelled or failed replay with its stored request."""
        stored = ReplayRequest.model_validate(self.executions.get_replay(replay_id).request)
        request = stored.model_copy(update={"dagster_run_id": dagster_run_id, "dry_run": False})
        return self.run(
            request, resume_replay_id=replay_id, should_stop=should_stop, on_progress=on_progress
        )

    # -- set-up ---------------------------------------------------------------------------

    def _plan(
        self, request: ReplayRequest, resume: ReplayRecord | None
    ) -> tuple[ReplayPlan, ConfigSnapshot]:
        return plan_replay(
            request,
            artefacts=self.artefacts,
            executions=self.executions,
            publisher=self.publisher,
            resume=resume,
        )

    def _resume_target(
        self, request: ReplayRequest, resume_replay_id: str | None
    ) -> ReplayRecord | None:
        """The replay to resume: ``resume_replay_id``, or an existing ``request.replay_id``."""
        if resume_replay_id is not None:
            return self._resumable(request, resume_replay_id)
        if request.replay_id is None:
            return None
        try:
            self.executions.get_replay(request.replay_id)
        except UnknownReplayError:
            return None  # a new replay that will carry this id
        return self._resumable(request, request.replay_id)

    def _resumable(self, request: ReplayRequest, replay_id: str) -> ReplayRecord:
        record = self.executions.get_replay(replay_id)
        if record.state is ReplayState.RUNNING:
            # Resumable only if its process is gone (no heartbeat): it is then marked FAILED.
            if not self.executions.fail_stale_replays(
                stale_after=self.stale_after, replay_id=replay_id
            ):
                raise InvalidStateError(
                    f"replay {replay_id!r} is RUNNING: its process"
                    + (f" ({record.owner})" if record.owner else "")
                    + " is still publishing (it beats every few seconds); cancel its Dagster "
                    f"run {record.dagster_run_id or ''} first, or wait for it to end"
                )
            record = self.executions.get_replay(replay_id)
        if record.state not in _RESUMABLE:
            raise InvalidStateError(f"replay {replay_id!r} is {record.state}: nothing to resume")
        stored = ReplayRequest.model_validate(record.request)
        different = [f for f in _SAME_ON_RESUME if getattr(stored, f) != getattr(request, f)]
        if different:
            raise InvalidInputError(
                f"resume of replay {replay_id!r} must repeat its request; these differ: "
                + ", ".join(f"{f} (was {getattr(stored, f)!r})" for f in different)
            )
        return record

    def _create(
        self, request: ReplayRequest, plan: ReplayPlan, snapshot: ConfigSnapshot
    ) -> ReplayRecord:
        replay_id = request.replay_id or new_replay_id()
        child_id = request.child_execution_id or new_child_execution_id(plan.pipeline)
        source = ReplaySource(
            replay_id=replay_id,
            parent_execution_id=plan.source_execution_id,
            source_route=plan.source_route,
            from_stage=plan.from_stage,
            to_route=plan.to_route,
            queue=plan.queue,
            total=plan.count,
            match=plan.match,
            limit=plan.limit,
            reason=request.reason,
            dagster_run_id=request.dagster_run_id,
            started_at=datetime.now(UTC),
        )
        record = self.executions.create_replay(
            replay_id,
            source_execution_id=plan.source_execution_id,
            source_route=plan.source_route,
            from_stage=plan.from_stage,
            to_route=plan.to_route,
            queue=plan.queue,
            request=request.model_dump(mode="json"),
            total=plan.count,
            bytes_total=plan.bytes,
            first_key=plan.first_key,
            last_key=plan.last_key,
            child_execution_id=child_id,
            dagster_run_id=request.dagster_run_id,
        )
        self.executions.create_execution(
            child_id,
            snapshot,
            origin="replay",
            parent_id=plan.source_execution_id,
            replay_source=source,
        )
        stages = snapshot.config.downstream(plan.to_route, plan.target_stage)
        self.executions.begin_attempt(child_id, stages, note={"replay": replay_id})
        return record

    def _reopen(self, record: ReplayRecord) -> ReplayRecord:
        """The child goes back to PENDING, its cancel or failure message gone with it."""
        if record.child_execution_id is not None:
            self.executions.set_status(
                record.child_execution_id,
                ExecutionStatus.PENDING,
                only_from=[ExecutionStatus.CANCELLED, ExecutionStatus.FAILED],
                clear_error=True,
            )
        return record

    # -- publishing -----------------------------------------------------------------------

    def _publish(
        self, run: _Run, should_stop: StopCallback | None, *, rate: float | None
    ) -> ReplayResult:
        plan = run.plan

        def confirmed(batch: Sequence[OutgoingMessage]) -> None:
            run.confirmed += len(batch)
            run.bytes += sum(len(message.body) for message in batch)
            run.last_key = batch[-1].position
            if run.confirmed - run.saved >= self.progress_every or (
                time.monotonic() - run.saved_at > 2.0
            ):
                self._save(run)

        outcome = self.publisher.publish(
            plan.queue,
            self._messages(run),
            on_confirmed=confirmed,
            should_stop=should_stop,
            rate=rate,
        )
        run.resent = outcome.resent
        self._save(run)
        if run.missing is not None:
            raise run.missing
        if outcome.stopped and run.confirmed < plan.count:
            self.executions.set_replay_state(run.replay_id, ReplayState.CANCELLED)
            self.executions.set_status(
                run.child_id,
                ExecutionStatus.CANCELLED,
                error=f"replay {run.replay_id} cancelled after {run.confirmed} of {plan.count} "
                "artefacts; resume it to continue",
            )
            self._update_source(run)
            log.info("replay %s cancelled at %d/%d", run.replay_id, run.confirmed, plan.count)
            return run.result("CANCELLED")
        if run.confirmed != plan.count:
            raise ReplayError(
                f"replay {run.replay_id!r} confirmed {run.confirmed} of {plan.count} planned "
                f"artefacts: objects under {plan.prefix!r} changed since the plan"
            )
        source = StageRef(
            execution_id=plan.source_execution_id, route=plan.source_route, stage=plan.from_stage
        )
        marker = EndMarker(
            execution_id=run.child_id,
            attempt=1,
            route=plan.to_route,
            stage=plan.target_stage,
            count=plan.count,
            replay_id=run.replay_id,
            source=source,
        )
        self.publisher.publish(plan.queue, [marker.message()])
        self.executions.set_replay_state(run.replay_id, ReplayState.SUCCEEDED)
        self._update_source(run)
        log.info("replay %s succeeded: %d artefacts confirmed", run.replay_id, run.confirmed)
        return run.result("SUCCEEDED")

    def _messages(self, run: _Run) -> Iterator[OutgoingMessage]:
        """Artefact messages in key order, their bodies read ahead by the store.

        Only the key, etag and id are made per message; the shared headers once. A missing
        artefact ends the stream (so outstanding confirms still arrive) and is kept in
        ``run.missing`` for :meth:`run` to raise with its key.
        """
        plan = run.plan
        selected = select_keys(
            self.artefacts,
            plan.prefix,
            match=plan.match,
            limit=None,
            start_after=plan.resume_after,
            stop_at=plan.last_key,
        )
        envelope = ArtefactEnvelope(
            execution_id=run.child_id,
            attempt=1,
            route=plan.to_route,
            stage=plan.target_stage,
            source_execution_id=plan.source_execution_id,
            source_route=plan.source_route,
            source_stage=plan.from_stage,
            replay_id=run.replay_id,
        )
        message = envelope.message
        try:
            for key, etag, body in self.artefacts.read_many(selected, concurrency=self.read_ahead):
                yield message(key, etag, body)
        except ArtefactNotFoundError as missing:
            run.missing = missing

    # -- bookkeeping ----------------------------------------------------------------------

    def _save(self, run: _Run) -> None:
        if run.last_key is not None and run.confirmed != run.saved:
            self.executions.save_replay_progress(
                run.replay_id,
                confirmed=run.confirmed,
                bytes_confirmed=run.bytes,
                last_confirmed_key=run.last_key,
            )
        run.saved = run.confirmed
        run.saved_at = time.monotonic()
        if run.on_progress is not None:
            run.on_progress(run.progress())

    def _fail(self, run: _Run, error: str) -> None:
        message = (
            f"replay {run.replay_id} failed after {run.confirmed} of {run.plan.count} "
            f"confirmed: {error}"
        )
        self.executions.set_replay_state(run.replay_id, ReplayState.FAILED, error=error)
        self.executions.set_status(
            run.child_id,
            ExecutionStatus.FAILED,
            error=message,
            only_from=[ExecutionStatus.PENDING, ExecutionStatus.RUNNING],
        )
        self._update_source(run)
        log.error("%s", message)

    def _update_source(self, run: _Run) -> None:
        child = self.executions.get_execution(run.child_id)
        if child.replay_source is None:
            return
        updated = child.replay_source.model_copy(
            update={
                "confirmed": run.confirmed,
                "bytes": run.bytes,
                "finished_at": datetime.now(UTC),
            }
        )
        self.executions.set_replay_source(run.child_id, updated)
