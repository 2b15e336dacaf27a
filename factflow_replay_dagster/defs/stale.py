"""Replays whose publishing process died: their records marked FAILED, their Dagster runs closed.

A process killed mid-replay (``kill -9``, a lost machine) leaves its replay RUNNING and its
Dagster run STARTED or CANCELING. The replay's heartbeat says it is gone; this marks the
replay and its child FAILED (resumable, nothing confirmed is sent again) and ends the run
FAILURE (CANCELED if a termination was already asked for), so neither stays in flight.
Used by ``stale_replay_sensor`` and by a resume of such a replay.
"""

from __future__ import annotations

__all__ = ["close_stale_replays"]

import dagster as dg

from ..executions import ExecutionStore

#: Run states that still claim to be in flight.
_IN_FLIGHT = {
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
}


def close_stale_replays(
    instance: dg.DagsterInstance,
    store: ExecutionStore,
    *,
    stale_after: float,
    replay_id: str | None = None,
) -> list[str]:
    """Close every stale replay (or only ``replay_id``); return the replay ids closed."""
    closed = []
    for replay in store.fail_stale_replays(stale_after=stale_after, replay_id=replay_id):
        closed.append(replay.replay_id)
        run = instance.get_run_by_id(replay.dagster_run_id) if replay.dagster_run_id else None
        if run is None or run.status not in _IN_FLIGHT:
            continue
        message = f"replay {replay.replay_id}: {replay.error}"
        if run.status is dg.DagsterRunStatus.CANCELING:
            instance.report_run_canceled(run, message=message)
        else:
            instance.report_run_failed(run, message=message)
    return closed
