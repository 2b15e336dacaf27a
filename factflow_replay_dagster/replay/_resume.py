"""Which replay a request resumes, and what a resume keeps from the replay it continues.

A resume must repeat what decides the selection (source, stage, route, match, limit); what
it leaves unset (the rate, the reason) is what the replay started with, and its shards are
the ones the replay was cut into. A RUNNING
replay is resumable only once its process stopped beating (it was killed): it is then marked
FAILED first, so two processes never publish it at once.
"""

from __future__ import annotations

__all__ = ["continuing", "resumable", "resume_target"]

from ..errors import InvalidInputError, InvalidStateError, UnknownReplayError
from ..executions import ExecutionStore, ReplayRecord, ReplayState
from .models import ReplayRequest

_RESUMABLE = {ReplayState.PLANNED, ReplayState.CANCELLED, ReplayState.FAILED}
_SAME_ON_RESUME = ("source_execution_id", "from_stage", "to_route", "match", "limit")
#: What a resume that does not say otherwise keeps from the replay it continues.
_KEPT_ON_RESUME = ("rate", "reason", "source_route")


def continuing(request: ReplayRequest, record: ReplayRecord) -> ReplayRequest:
    """A resume's request: what it leaves unset (the rate, the reason) is what the replay
    was started with; what it sets (say, a new rate) applies from now on."""
    stored = ReplayRequest.model_validate(record.request)
    kept = {
        name: getattr(stored, name)
        for name in _KEPT_ON_RESUME
        if getattr(request, name) is None and getattr(stored, name) is not None
    }
    kept["shards"] = stored.shards  # cut when it started; a resume continues each
    return request.model_copy(update=kept)


def resume_target(
    executions: ExecutionStore,
    request: ReplayRequest,
    resume_replay_id: str | None,
    *,
    stale_after: float,
) -> ReplayRecord | None:
    """The replay to resume: ``resume_replay_id``, or an existing ``request.replay_id``."""
    if resume_replay_id is not None:
        return resumable(executions, request, resume_replay_id, stale_after=stale_after)
    if request.replay_id is None:
        return None
    try:
        executions.get_replay(request.replay_id)
    except UnknownReplayError:
        return None  # a new replay that will carry this id
    return resumable(executions, request, request.replay_id, stale_after=stale_after)


def resumable(
    executions: ExecutionStore, request: ReplayRequest, replay_id: str, *, stale_after: float
) -> ReplayRecord:
    """The replay ``replay_id``, if ``request`` may resume it; else a clear refusal."""
    record = executions.get_replay(replay_id)
    if record.state is ReplayState.RUNNING:
        # Resumable only if its process is gone (no heartbeat): it is then marked FAILED.
        if not executions.fail_stale_replays(stale_after=stale_after, replay_id=replay_id):
            raise InvalidStateError(
                f"replay {replay_id!r} is RUNNING: its process"
                + (f" ({record.owner})" if record.owner else "")
                + " is still publishing (it beats every few seconds); cancel its Dagster "
                f"run {record.dagster_run_id or ''} first, or wait for it to end"
            )
        record = executions.get_replay(replay_id)
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
