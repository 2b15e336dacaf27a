"""Sensors: recover failed executions automatically; never leave a crashed replay RUNNING.

The bodies are thin; the decisions are typed helpers (``failed_execution_requests``,
``close_replays_of_run``) tested on their own.
"""

# No `from __future__ import annotations` here: Dagster reads sensor annotations at runtime.

__all__ = [
    "close_replays_of_run",
    "failed_execution_requests",
    "make_failed_execution_sensor",
    "make_replay_run_sensors",
    "make_stale_replay_sensor",
    "make_stored_artefacts_sensor",
]

import json
from collections.abc import Sequence
from dataclasses import dataclass

import dagster as dg

from ..errors import NothingSucceededError, NotSettledError
from ..executions import ExecutionRecord, ExecutionStatus, ExecutionStore, ReplayState
from ..recovery import check_settled, recovery_launch_tags, restart_point
from ..settings import DEFAULTS
from .discovery import discover
from .resources import ArtefactStoreResource, ExecutionStoreResource
from .stale import close_stale_replays

#: Change-log entries read per tick; the cursor advances by what was read.
BATCH = 1000


@dataclass(frozen=True)
class FailedScan:
    """What one tick found: recovery run requests, the new cursor, and why nothing else."""

    requests: list[dg.RunRequest]
    cursor: str
    skipped: list[str]


@dataclass(frozen=True)
class _Cursor:
    """The change-log position read up to, and failures waiting for their attempt to settle.

    Stored as JSON; a bare integer (an older cursor) is read as a position.
    """

    seq: int
    waiting: tuple[str, ...] = ()

    @classmethod
    def parse(cls, raw: str | None) -> "_Cursor | None":
        if raw is None:
            return None
        if raw.strip().isdigit():
            return cls(int(raw))
        data = json.loads(raw)
        return cls(int(data["seq"]), tuple(data.get("waiting", ())))

    def dump(self) -> str:
        return json.dumps({"seq": self.seq, "waiting": sorted(set(self.waiting))})


def _has_restart_point(store: ExecutionStore, execution: ExecutionRecord) -> bool:
    try:
        restart_point(store, execution.id)
    except NothingSucceededError:
        return False
    return True


def failed_execution_requests(
    store: ExecutionStore,
    cursor: str | None,
    *,
    settle_seconds: float = DEFAULTS.recovery_settle_seconds,
) -> FailedScan:
    """Recovery requests for executions that became FAILED after ``cursor`` (a change-log
    position), plus those still waiting from earlier ticks. Without a cursor (first tick)
    every execution FAILED now is considered, so failures from before the sensor existed (or
    while the daemon was down) are recovered too.

    A failure whose attempt still has a stage running waits (kept in the cursor) until that
    stage finishes or ``settle_seconds`` pass. The run key ``recover:<execution>:<failure
    number>`` makes each failure recovered once, whatever the number of ticks or daemons.
    """
    previous = _Cursor.parse(cursor)
    if previous is None:
        candidates = store.list_executions(status=ExecutionStatus.FAILED, limit=10_000)
        position = store.last_event_seq()
    else:
        events = store.events_since(previous.seq, kinds=["status"], limit=BATCH)
        position = events[-1].seq if events else previous.seq
        ids = dict.fromkeys(
            [*previous.waiting, *(e.execution_id for e in events if e.status == "FAILED")]
        )
        candidates = [r for i in ids if (r := store.find_execution(i)) is not None]
    requests: list[dg.RunRequest] = []
    skipped: list[str] = []
    waiting: list[str] = []
    for execution in candidates:
        if execution.status is not ExecutionStatus.FAILED:
            skipped.append(f"{execution.id} is {execution.status} now")
            continue
        if not _has_restart_point(store, execution):
            skipped.append(f"{execution.id} has no succeeded stage to restart from")
            continue
        try:
            check_settled(store, execution, settle_seconds=settle_seconds)
        except NotSettledError as exc:
            waiting.append(execution.id)
            skipped.append(
                f"{execution.id} waits: {', '.join(exc.running)} still running "
                f"(at most {exc.retry_in:.0f} s more)"
            )
            continue
        reason = f"failed_execution_sensor: {execution.error or 'failed'}"
        requests.append(
            dg.RunRequest(
                run_key=f"recover:{execution.id}:{execution.failure_count}",
                run_config={"execution_id": execution.id, "reason": reason[:2000]},
                # At submission: the production profile limits recoveries by kind.
                tags=recovery_launch_tags(execution.id),
            )
        )
    return FailedScan(requests, _Cursor(position, tuple(waiting)).dump(), skipped)


def make_failed_execution_sensor(
    recovery_job: dg.JobDefinition,
    *,
    minimum_interval_seconds: int = 30,
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.RUNNING,
) -> dg.SensorDefinition:
    """The sensor that requests ``recovery_job`` for each newly failed execution."""

    @dg.sensor(
        name="failed_execution_sensor",
        job=recovery_job,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        description="Requests recovery_job once per failure of an execution (run key "
        "recover:<execution>:<failure number>); follows the execution store's "
        "change log with a cursor.",
    )
    def failed_execution_sensor(
        context: dg.SensorEvaluationContext, executions: ExecutionStoreResource
    ) -> dg.SensorResult:
        with executions.open() as store:
            scan = failed_execution_requests(
                store, context.cursor, settle_seconds=executions.recovery_settle_seconds
            )
        if scan.requests:
            return dg.SensorResult(run_requests=scan.requests, cursor=scan.cursor)
        reason = "no execution failed since the last check"
        if scan.skipped:
            reason = "nothing to recover: " + "; ".join(scan.skipped[:10])
        return dg.SensorResult(skip_reason=dg.SkipReason(reason), cursor=scan.cursor)

    return failed_execution_sensor


def close_replays_of_run(
    store: ExecutionStore, run_id: str, *, state: ReplayState, error: str
) -> list[str]:
    """Mark replays of a run that ended badly as ``state`` and their child executions FAILED
    or CANCELLED, unless the op already did. Returns the replay ids it changed."""
    changed = []
    for replay in store.list_replays(dagster_run_id=run_id):
        if replay.state not in (ReplayState.PLANNED, ReplayState.RUNNING):
            continue
        store.set_replay_state(replay.replay_id, state, error=error)
        if replay.child_execution_id is not None:
            status = (
                ExecutionStatus.FAILED if state is ReplayState.FAILED else ExecutionStatus.CANCELLED
            )
            store.set_status(
                replay.child_execution_id,
                status,
                error=f"replay {replay.replay_id}: {error}",
                only_from=[ExecutionStatus.PENDING, ExecutionStatus.RUNNING],
            )
        changed.append(replay.replay_id)
    return changed


def make_replay_run_sensors(replay_job: dg.JobDefinition) -> list[dg.SensorDefinition]:
    """``replay_failure_sensor`` (failed runs) and ``replay_canceled_sensor`` (cancelled runs
    whose process could not clean up, e.g. killed): neither leaves a replay RUNNING."""

    @dg.run_failure_sensor(
        name="replay_failure_sensor",
        monitored_jobs=[replay_job],
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Marks the replay and its child execution FAILED with the run's error "
        "when a replay_job run fails (also when its process crashed).",
    )
    def replay_failure_sensor(
        context: dg.RunFailureSensorContext, executions: ExecutionStoreResource
    ) -> dg.SkipReason | None:
        error = context.failure_event.message or "the replay_job run failed"
        with executions.open() as store:
            changed = close_replays_of_run(
                store, context.dagster_run.run_id, state=ReplayState.FAILED, error=error
            )
        if not changed:
            return dg.SkipReason(f"run {context.dagster_run.run_id} left no replay RUNNING")
        context.log.info(f"marked replays {', '.join(changed)} failed: {error}")
        return None

    @dg.run_status_sensor(
        name="replay_canceled_sensor",
        run_status=dg.DagsterRunStatus.CANCELED,
        monitored_jobs=[replay_job],
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Marks a replay CANCELLED (resumable) when its run was cancelled without "
        "the op saving that itself (e.g. a killed process).",
    )
    def replay_canceled_sensor(
        context: dg.RunStatusSensorContext, executions: ExecutionStoreResource
    ) -> dg.SkipReason | None:
        with executions.open() as store:
            changed = close_replays_of_run(
                store,
                context.dagster_run.run_id,
                state=ReplayState.CANCELLED,
                error="the replay_job run was cancelled",
            )
        if not changed:
            return dg.SkipReason(f"run {context.dagster_run.run_id} left no replay RUNNING")
        return None

    return [replay_failure_sensor, replay_canceled_sensor]


def make_stale_replay_sensor(
    *, stale_after: float, default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.RUNNING
) -> dg.SensorDefinition:
    """``stale_replay_sensor``: replays whose process died are marked FAILED (resumable) and
    their Dagster runs closed, so a kill -9 never leaves a replay RUNNING (see ``stale``)."""

    @dg.sensor(
        name="stale_replay_sensor",
        minimum_interval_seconds=max(5, int(stale_after / 2)),
        default_status=default_status,
        description="Marks a RUNNING replay whose publishing process stopped beating (killed) "
        "FAILED, resumable, with its child execution, and ends its Dagster run FAILURE.",
    )
    def stale_replay_sensor(
        context: dg.SensorEvaluationContext, executions: ExecutionStoreResource
    ) -> dg.SkipReason:
        with executions.open() as store:
            closed = close_stale_replays(
                context.instance, store, stale_after=executions.replay_stale_seconds
            )
        if closed:
            return dg.SkipReason(f"closed replays whose process died: {', '.join(closed)}")
        return dg.SkipReason("every RUNNING replay's process is alive")

    return stale_replay_sensor


def make_stored_artefacts_sensor(
    specs: Sequence[dg.AssetSpec],
    *,
    minimum_interval_seconds: int = 30,
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.RUNNING,
    verify: bool = True,
) -> dg.SensorDefinition:
    """The sensor that shows stored artefacts as asset partitions (see ``discovery``)."""
    registered = {spec.key for spec in specs}

    @dg.sensor(
        name="stored_artefacts_sensor",
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        description="Adds new executions as partitions and reports each finished stage as a "
        "materialization (objects, bytes, first/last key, location, lineage, "
        "provenance), failed stages as observations, and a storage check; follows "
        "the execution store's change log with a cursor.",
    )
    def stored_artefacts_sensor(
        context: dg.SensorEvaluationContext,
        executions: ExecutionStoreResource,
        artefacts: ArtefactStoreResource,
    ) -> dg.SensorResult:
        with executions.open() as store, artefacts.open() as objects:
            found = discover(
                store,
                context.cursor,
                registered=registered,
                location=artefacts.describe(),
                verify_with=objects if verify else None,
            )
        requests = [
            dg.DynamicPartitionsDefinition(name=name).build_add_request(keys)
            for name, keys in found.partitions.items()
        ]
        if not found.events and not requests:
            return dg.SensorResult(
                skip_reason=dg.SkipReason(
                    f"nothing stored or finished since change {context.cursor or 0}"
                ),
                cursor=found.cursor,
            )
        return dg.SensorResult(
            asset_events=found.events, dynamic_partitions_requests=requests, cursor=found.cursor
        )

    return stored_artefacts_sensor
