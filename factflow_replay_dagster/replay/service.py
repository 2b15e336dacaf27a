"""The detached replay service: plan, create the child execution, publish with confirms, resume.

Plain Python with no Dagster import; the Dagster job, the CLI, the HTTP API and tests all
drive this class. A replay is cut into shards (contiguous key ranges, one by default):
:meth:`DetachedReplayService.start` creates or reopens it, :meth:`publish_shard` publishes
one shard (each may run in its own process), :meth:`finish` sends the end marker once all
succeeded. :meth:`run` does all of it here, shard after shard.
"""

from __future__ import annotations

__all__ = ["DetachedReplayService", "ProgressCallback", "ReplayStart"]

import dataclasses
import logging
import time
from datetime import UTC, datetime

from ..errors import (
    ExecutionStoreError,
    FactflowReplayError,
    InvalidStateError,
    ReplayError,
)
from ..executions import ExecutionStatus, ExecutionStore, ReplayRecord, ReplayState
from ..messages import EndMarker
from ..queues.base import QueuePublisher, StopCallback
from ..settings import DEFAULTS
from ..snapshot import ConfigSnapshot, StageRef
from ..storage.base import ArtefactStore
from ._heartbeat import OWNER, Heartbeat
from ._records import create_replay, reopen_replay
from ._resume import continuing, resume_target
from ._shard_run import ProgressCallback, ReplayStart, ShardRun
from .models import (
    ReplayPlan,
    ReplayRequest,
    ReplayResult,
    ShardPlan,
    ShardResult,
)
from .planning import CheckedReplay, check_replay, plan_replay

log = logging.getLogger(__name__)


class DetachedReplayService:
    """Replays a parent execution's stored artefacts of one stage into a route's queue.

    A new child execution records where its input came from (:class:`ReplaySource`). The
    route resolves from the parent's snapshot; everything is checked before the first
    publish; every message is confirmed; each shard's position is saved so a cancelled,
    failed or killed replay resumes after its last confirmed artefacts.
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
        resume = resume_target(
            self.executions, request, resume_replay_id, stale_after=self.stale_after
        )
        checked = check_replay(request, executions=self.executions, publisher=self.publisher)
        child = request.child_execution_id
        if resume is None and child is not None and self.executions.find_execution(child):
            raise InvalidStateError(f"execution {child!r} already exists")
        return dataclasses.replace(checked, resumes=resume)

    def plan(self, request: ReplayRequest, *, resume_replay_id: str | None = None) -> ReplayPlan:
        """Resolve, check and list (for a resume: what is left); publish and create nothing."""
        plan, _ = self._plan(
            request,
            self._resume_target(request, resume_replay_id),
        )
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
        artefact here, shard after shard, or only the rest when resuming.

        Returns SUCCEEDED, CANCELLED (``should_stop`` said so; positions are saved) or
        DRY_RUN; raises :class:`FactflowReplayError` subclasses on failure, after saving
        progress and marking the replay and its child execution FAILED with the reason.

        A ``request.replay_id`` naming an existing cancelled or failed replay resumes it, so
        running the same request again (a Dagster run retry) never re-sends what was confirmed.
        """
        started_at = time.monotonic()
        if request.dry_run:
            dry = plan or self.plan(request, resume_replay_id=resume_replay_id)
            return ReplayResult(state="DRY_RUN", plan=dry, total=dry.count, bytes=dry.bytes)
        start = self.start(request, plan=plan, resume_replay_id=resume_replay_id)
        assert start is not None  # not a dry run
        resent = 0
        for shard in start.plan.shards:
            result = self.publish_shard(
                start, shard, should_stop=should_stop, on_progress=on_progress
            )
            resent += result.resent
            if result.state == "CANCELLED":
                return self._result(start, "CANCELLED", resent, started_at)
        self.finish(start)
        return self._result(start, "SUCCEEDED", resent, started_at)

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

    # -- the steps --------------------------------------------------------------------------

    def start(
        self,
        request: ReplayRequest,
        *,
        plan: ReplayPlan | None = None,
        resume_replay_id: str | None = None,
    ) -> ReplayStart | None:
        """Create the replay, its shards and its child execution (or reopen a resumed one)
        and mark it RUNNING; None for a dry run (nothing is created)."""
        resume = resume_target(
            self.executions, request, resume_replay_id, stale_after=self.stale_after
        )
        if resume is not None:
            request = continuing(request, resume)
        if plan is None or not plan.shards:
            plan, snapshot = self._plan(request, resume)
        else:
            snapshot = self.executions.snapshot_of(plan.source_execution_id)
        if request.dry_run:
            return None
        if resume is None:
            record = create_replay(self.executions, request, plan, snapshot)
        else:
            record = reopen_replay(self.executions, resume)
        if record.child_execution_id is None:
            raise InvalidStateError(f"replay {record.replay_id!r} has no child execution")
        self.executions.set_replay_state(
            record.replay_id,
            ReplayState.RUNNING,
            child_execution_id=record.child_execution_id,
            dagster_run_id=request.dagster_run_id,
            owner=OWNER,
        )
        log.info(
            "replay %s: %d artefacts of %s/%s from %s into %s (queue %s) in %d shard(s)%s",
            record.replay_id,
            plan.count,
            plan.source_route,
            plan.from_stage,
            plan.source_execution_id,
            plan.to_route,
            plan.queue,
            len(plan.shards),
            f", resuming after {record.confirmed}" if resume else "",
        )
        return ReplayStart(
            replay_id=record.replay_id,
            child_execution_id=record.child_execution_id,
            plan=plan,
            rate=request.rate,
            resumed=resume is not None,
        )

    def publish_shard(
        self,
        start: ReplayStart,
        shard: ShardPlan,
        *,
        should_stop: StopCallback | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> ShardResult:
        """Publish one shard in key order (the rest of it, when resuming). A failure saves
        the position, marks the shard, the replay and the child FAILED, and raises."""
        if shard.done:
            return ShardResult(
                replay_id=start.replay_id,
                index=shard.index,
                state="SUCCEEDED",
                confirmed=shard.count,
                total=shard.count,
            )
        self.executions.set_shard_state(start.replay_id, shard.index, ReplayState.RUNNING)
        run = ShardRun(
            start,
            shard,
            artefacts=self.artefacts,
            executions=self.executions,
            publisher=self.publisher,
            progress_every=self.progress_every,
            read_ahead=self.read_ahead,
            on_progress=on_progress,
        )
        try:
            with Heartbeat(self.executions, start.replay_id, every=self.stale_after / 10):
                result = run.publish(should_stop)
        except FactflowReplayError as exc:
            if not run.taken_over:  # else the resume that took it over records everything
                self._record_failure(run, start, shard, exc)
            raise
        if result.state == "CANCELLED":
            self._cancel(start, shard)
        else:
            self.executions.set_shard_state(start.replay_id, shard.index, ReplayState.SUCCEEDED)
        return result

    def finish(self, start: ReplayStart) -> None:
        """Every shard succeeded: send the end marker (the child's first stage then knows how
        many artefacts to expect) and mark the replay SUCCEEDED."""
        plan = start.plan
        unfinished = [s.shard for s in self.executions.replay_shards(start.replay_id) if not s.done]
        if unfinished:
            raise ReplayError(
                f"replay {start.replay_id!r} cannot finish: shards {unfinished} did not succeed"
            )
        confirmed = self.executions.get_replay(start.replay_id).confirmed
        if confirmed != plan.count:
            error = ReplayError(
                f"replay {start.replay_id!r} confirmed {confirmed} of {plan.count} planned "
                f"artefacts: objects under {plan.prefix!r} changed since the plan"
            )
            self._fail(start, None, str(error))
            raise error
        source = StageRef(
            execution_id=plan.source_execution_id, route=plan.source_route, stage=plan.from_stage
        )
        marker = EndMarker(
            execution_id=start.child_execution_id,
            attempt=1,
            route=plan.to_route,
            stage=plan.target_stage,
            count=plan.count,
            replay_id=start.replay_id,
            source=source,
        )
        self.publisher.publish(plan.queue, [marker.message()])
        self.executions.set_replay_state(start.replay_id, ReplayState.SUCCEEDED)
        self._update_source(start)
        log.info("replay %s succeeded: %d artefacts confirmed", start.replay_id, confirmed)

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
        return resume_target(
            self.executions, request, resume_replay_id, stale_after=self.stale_after
        )

    # -- endings -----------------------------------------------------------------------------

    def _result(
        self, start: ReplayStart, state: str, resent: int, started_at: float
    ) -> ReplayResult:
        record = self.executions.get_replay(start.replay_id)
        return ReplayResult(
            state="SUCCEEDED" if state == "SUCCEEDED" else "CANCELLED",
            plan=start.plan,
            replay_id=start.replay_id,
            child_execution_id=start.child_execution_id,
            confirmed=record.confirmed,
            total=start.plan.count,
            bytes=record.bytes_confirmed,
            resent=resent,
            seconds=time.monotonic() - started_at,
            last_confirmed_key=record.last_confirmed_key,
        )

    def _cancel(self, start: ReplayStart, shard: ShardPlan) -> None:
        self.executions.set_shard_state(start.replay_id, shard.index, ReplayState.CANCELLED)
        record = self.executions.get_replay(start.replay_id)
        if record.state is not ReplayState.FAILED:
            self.executions.set_replay_state(start.replay_id, ReplayState.CANCELLED)
        self.executions.set_status(
            start.child_execution_id,
            ExecutionStatus.CANCELLED,
            error=f"replay {start.replay_id} cancelled after {record.confirmed} of "
            f"{start.plan.count} artefacts; resume it to continue",
            only_from=[ExecutionStatus.PENDING, ExecutionStatus.RUNNING],
        )
        self._update_source(start)
        log.info("replay %s cancelled at %d/%d", start.replay_id, record.confirmed, record.total)

    def _record_failure(
        self, run: ShardRun, start: ReplayStart, shard: ShardPlan, error: FactflowReplayError
    ) -> None:
        """Save the position and mark the failure, as far as the execution store lets us.

        The store may be what failed (a database that went away); its error while recording
        the failure must not replace the one that stopped the replay. The replay then stays
        RUNNING with its last saved position; its heartbeat stops with this process, so a
        resume (or ``stale_replay_sensor``) closes it once it is stale.
        """
        try:
            run.save()
            if run.closed is not None:  # closed elsewhere, with its own reason: only the shard
                self.executions.set_shard_state(
                    start.replay_id, shard.index, ReplayState.FAILED, error=str(error)
                )
            else:
                self._fail(start, shard, str(error))
        except ExecutionStoreError as unrecorded:
            log.warning(
                "replay %s failed and the failure could not be recorded (%s); it stays "
                "RUNNING at its last saved position until its heartbeat is stale, then a "
                "resume continues it",
                start.replay_id,
                unrecorded,
            )

    def _fail(self, start: ReplayStart, shard: ShardPlan | None, error: str) -> None:
        if shard is not None:
            self.executions.set_shard_state(
                start.replay_id, shard.index, ReplayState.FAILED, error=error
            )
        record = self.executions.get_replay(start.replay_id)
        where = (
            f" (shard {shard.index})" if shard is not None and len(start.plan.shards) > 1 else ""
        )
        message = (
            f"replay {start.replay_id} failed{where} after {record.confirmed} of "
            f"{start.plan.count} confirmed: {error}"
        )
        self.executions.set_replay_state(start.replay_id, ReplayState.FAILED, error=error)
        self.executions.set_status(
            start.child_execution_id,
            ExecutionStatus.FAILED,
            error=message,
            only_from=[ExecutionStatus.PENDING, ExecutionStatus.RUNNING],
        )
        self._update_source(start)
        log.error("%s", message)

    def _update_source(self, start: ReplayStart) -> None:
        """The child's provenance shows what is confirmed now."""
        child = self.executions.get_execution(start.child_execution_id)
        if child.replay_source is None:
            return
        record = self.executions.get_replay(start.replay_id)
        updated = child.replay_source.model_copy(
            update={
                "confirmed": record.confirmed,
                "bytes": record.bytes_confirmed,
                "finished_at": datetime.now(UTC),
            }
        )
        self.executions.set_replay_source(start.child_execution_id, updated)
