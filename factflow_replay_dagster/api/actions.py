"""What each endpoint does, in plain functions over the core and the Dagster seam.

A request is checked with the core's own checks first (``check`` of the replay service, the
rerun service and the recovery manager: ids, the execution, its snapshot's stages and
routes, the queue, the state), so bad input is refused before any run exists; the run then
plans and publishes as any other Dagster run of the job would.
"""

from __future__ import annotations

__all__ = [
    "REQUESTED_BY",
    "cancel_replay",
    "readiness",
    "replay_status",
    "resume_replay",
    "start_recovery",
    "start_replay",
    "start_rerun",
]

from typing import Any

from .. import run_tags
from ..errors import (
    FactflowReplayError,
    InvalidStateError,
    RunSubmissionError,
    UnknownReplayError,
)
from ..ids import validate_id
from ..queues.base import QueuePublisher
from ..recovery import RecoveryManager, RecoveryOptions, RerunRequest, RerunService
from ..recovery.launch import recovery_launch_tags
from ..replay import (
    DetachedReplayService,
    ReplayOptions,
    ReplayPlan,
    ReplayRequest,
    ReplayStatus,
    new_replay_id,
    replay_launch_tags,
)
from ..replay.models import new_child_execution_id
from .context import ApiContext
from .launch import RunInfo
from .models import CancelAccepted, Readiness, ReplayAccepted, RunAccepted

#: The ``factflow/requested_by`` tag of the API's runs (and ``requested_by`` in lineage).
REQUESTED_BY = "api"
_REPLAY_PREFIX = "replay-"


def _config(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def _replay_service(ctx: ApiContext, publisher: QueuePublisher) -> DetachedReplayService:
    return DetachedReplayService(
        artefacts=ctx.artefacts(), executions=ctx.executions(), publisher=publisher
    )


def _accepted(replay_id: str, child_id: str, run_id: str) -> ReplayAccepted:
    return ReplayAccepted(
        replay_id=replay_id,
        child_execution_id=child_id,
        dagster_run_id=run_id,
        status_url=f"/api/v1/replays/{replay_id}",
        events_url=f"/api/v1/replays/{replay_id}/events",
        execution_url=f"/api/v1/executions/{child_id}",
    )


def start_replay(
    ctx: ApiContext, source_execution_id: str, options: ReplayOptions
) -> ReplayPlan | ReplayAccepted:
    """A dry run's plan (nothing submitted), or the submitted ``replay_job`` run."""
    request = ReplayRequest.of(source_execution_id, options, requested_by=REQUESTED_BY)
    with ctx.publisher() as publisher:
        service = _replay_service(ctx, publisher)
        if request.dry_run:
            return service.plan(request)
        checked = service.check(request)
    if checked.resumes is not None:
        raise InvalidStateError(
            f"replay {checked.resumes.replay_id!r} already exists ({checked.resumes.state}): "
            f"resume it with POST /api/v1/replays/{checked.resumes.replay_id}/resume"
        )
    child_id = request.child_execution_id or new_child_execution_id(checked.parent.pipeline)
    config = _config(
        {**request.options().model_dump(exclude={"dry_run"}), "child_execution_id": child_id}
    )
    config["source_execution_id"] = request.source_execution_id
    # The queue's and the source's tags at submission: the run queue's limits read them.
    tags = {
        **replay_launch_tags(ctx.executions(), request),
        run_tags.REQUESTED_BY: REQUESTED_BY,
        run_tags.CHILD_EXECUTION: child_id,
    }
    run_id = ctx.launcher.submit("replay_job", config, tags)
    # Unnamed, the replay is named after the run (its root run: retries resume it).
    return _accepted(request.replay_id or new_replay_id(run_id), child_id, run_id)


def start_rerun(ctx: ApiContext, request: RerunRequest) -> RunAccepted:
    """Submit ``rerun_stage_job`` for a checked rerun."""
    with ctx.publisher() as publisher:
        service = RerunService(
            artefacts=ctx.artefacts(), executions=ctx.executions(), publisher=publisher
        )
        route, _ = service.check(request)
    tags = {run_tags.REQUESTED_BY: REQUESTED_BY, run_tags.EXECUTION: request.execution_id}
    run_id = ctx.launcher.submit("rerun_stage_job", _config(request.model_dump()), tags)
    return RunAccepted(
        kind="rerun",
        execution_id=request.execution_id,
        dagster_run_id=run_id,
        route=route,
        stage=request.stage,
        status_url=f"/api/v1/executions/{request.execution_id}",
    )


def start_recovery(ctx: ApiContext, execution_id: str, options: RecoveryOptions) -> RunAccepted:
    """Submit ``recovery_job`` for a checked recovery (the run's claim is what makes two
    recoveries of one failure publish once)."""
    validate_id(execution_id, kind="execution")
    with ctx.publisher() as publisher:
        manager = RecoveryManager(
            artefacts=ctx.artefacts(),
            executions=ctx.executions(),
            publisher=publisher,
            max_attempts=ctx.settings.recovery_max_attempts,
            settle_seconds=ctx.settings.recovery_settle_seconds,
        )
        route, stage = manager.check(execution_id, force=options.force)
    tags = {**recovery_launch_tags(execution_id), run_tags.REQUESTED_BY: REQUESTED_BY}
    config = _config({"execution_id": execution_id, **options.model_dump()})
    run_id = ctx.launcher.submit("recovery_job", config, tags)
    return RunAccepted(
        kind="recovery",
        execution_id=execution_id,
        dagster_run_id=run_id,
        route=route,
        stage=stage,
        status_url=f"/api/v1/executions/{execution_id}",
    )


def _pending_run(ctx: ApiContext, replay_id: str) -> RunInfo | None:
    """The ``replay_job`` run that will create ``replay_id``: tagged with it (a named
    replay), or the run it is named after (``replay-<run id>``)."""
    launcher = ctx.launcher
    found = launcher.find_run("replay_job", {run_tags.REPLAY_ID: replay_id})
    if found is None and replay_id.startswith(_REPLAY_PREFIX):
        run = launcher.run(replay_id.removeprefix(_REPLAY_PREFIX))
        if run is not None and run.job_name == "replay_job":
            found = run
    return found


def _run_status(ctx: ApiContext, run_id: str | None) -> str | None:
    if run_id is None:
        return None
    try:
        run = ctx.launcher.run(run_id)
    except RunSubmissionError:
        return None  # Dagster unreachable: the replay's own record still answers
    return run.status if run is not None else None


def replay_status(ctx: ApiContext, replay_id: str) -> ReplayStatus:
    """The replay's record; before its run created one, the run's state (PENDING until the
    run publishes; FAILED or CANCELLED if it ended first)."""
    validate_id(replay_id, kind="replay")
    try:
        record = ctx.executions().get_replay(replay_id)
    except UnknownReplayError:
        run = _pending_run(ctx, replay_id)
        if run is None:
            raise
        if run.status == "FAILURE":
            error = f"Dagster run {run.run_id} failed before the replay started; see its events"
            state = "FAILED"
        elif run.status == "CANCELED":
            error, state = f"Dagster run {run.run_id} was cancelled before it started", "CANCELLED"
        else:
            error, state = None, "PENDING"
        return ReplayStatus(
            replay_id=replay_id,
            state=state,  # type: ignore[arg-type]
            dagster_run_id=run.run_id,
            dagster_run_status=run.status,
            error=error,
        )
    status = ReplayStatus.of(record, dagster_run_status=_run_status(ctx, record.dagster_run_id))
    return _resumed(ctx, status) if status.finished else status


def _resumed(ctx: ApiContext, status: ReplayStatus) -> ReplayStatus:
    """A cancelled or failed replay whose resume was submitted and has not started
    publishing yet is PENDING again (its new run), not finished."""
    try:
        run = ctx.launcher.find_run("replay_job", {run_tags.REPLAY_ID: status.replay_id})
    except RunSubmissionError:
        return status
    if run is None or run.finished or run.run_id == status.dagster_run_id:
        return status
    return status.model_copy(
        update={
            "state": "PENDING",
            "dagster_run_id": run.run_id,
            "dagster_run_status": run.status,
            "error": None,
            "finished_at": None,
        }
    )


def _active_run(ctx: ApiContext, status: ReplayStatus) -> RunInfo | None:
    if status.dagster_run_id is None:
        return None
    run = ctx.launcher.run(status.dagster_run_id)
    return run if run is not None and not run.finished else None


def cancel_replay(ctx: ApiContext, replay_id: str) -> CancelAccepted:
    """Terminate the replay's run: it stops at a message boundary and saves its position."""
    status = replay_status(ctx, replay_id)
    if status.finished:
        raise InvalidStateError(f"replay {replay_id!r} is {status.state}: nothing to cancel")
    run = _active_run(ctx, status)
    if run is None:
        raise InvalidStateError(
            f"replay {replay_id!r} is {status.state} but no Dagster run is publishing it "
            f"(run {status.dagster_run_id or 'unknown'} ended): resume it instead"
        )
    ctx.launcher.cancel(run.run_id)
    return CancelAccepted(
        replay_id=replay_id, dagster_run_id=run.run_id, status_url=f"/api/v1/replays/{replay_id}"
    )


def resume_replay(ctx: ApiContext, replay_id: str) -> ReplayAccepted:
    """Submit a ``replay_job`` run that continues a cancelled or failed replay after its
    last confirmed artefact (with its stored request)."""
    status = replay_status(ctx, replay_id)
    run = _active_run(ctx, status)
    if run is not None:
        raise InvalidStateError(
            f"replay {replay_id!r} is being published by Dagster run {run.run_id} "
            f"({run.status}): cancel it first"
        )
    record = ctx.executions().get_replay(replay_id)
    stored = ReplayRequest.model_validate(record.request)
    request = stored.model_copy(update={"requested_by": REQUESTED_BY, "dry_run": False})
    with ctx.publisher() as publisher:
        _replay_service(ctx, publisher).check(request, resume_replay_id=replay_id)
    options = stored.options().model_dump(exclude={"dry_run", "replay_id"})
    config = _config(
        {
            **options,
            "source_execution_id": stored.source_execution_id,
            "resume_replay_id": replay_id,
        }
    )
    tags = {
        **replay_launch_tags(ctx.executions(), stored),
        run_tags.REQUESTED_BY: REQUESTED_BY,
        run_tags.REPLAY_ID: replay_id,
    }
    if record.child_execution_id is not None:
        tags[run_tags.CHILD_EXECUTION] = record.child_execution_id
    run_id = ctx.launcher.submit("replay_job", config, tags)
    return _accepted(replay_id, record.child_execution_id or "", run_id)


def readiness(ctx: ApiContext) -> Readiness:
    """Whether the database, the broker, the storage and Dagster answer, each checked."""
    checks: dict[str, str] = {}

    def check(name: str, probe: Any) -> None:
        try:
            probe()
        except FactflowReplayError as exc:
            checks[name] = str(exc)
        else:
            checks[name] = "ok"

    def database() -> None:
        ctx.executions().last_event_seq()

    def broker() -> None:
        with ctx.publisher() as publisher:
            publisher.check_connection()

    def storage() -> None:
        next(iter(ctx.artefacts().list_keys("executions/")), None)

    check("database", database)
    check("storage", storage)
    check("broker", broker)
    check("dagster", ctx.launcher.check)
    down = [name for name, result in checks.items() if result != "ok"]
    return Readiness(status="not_ready" if down else "ready", down=down, checks=checks)
