"""A replay's progress as server-sent events, read from the execution store until it ends.

The replay's run saves its position every ``FACTFLOW_PROGRESS_EVERY`` confirms and every
2 s; the stream polls the store and sends a ``progress`` event whenever the status changed,
then one ``end`` event when the replay succeeded, failed or was cancelled. Each event's data
is a :class:`~factflow_replay_dagster.replay.ReplayStatus` as JSON; a comment line keeps
idle connections open.
"""

from __future__ import annotations

__all__ = ["replay_events"]

import json
import time
from collections.abc import AsyncIterator

import anyio.to_thread

from ..errors import FactflowReplayError
from ..replay import ReplayStatus
from . import actions
from .context import ApiContext
from .errors import status_of


def _event(kind: str, number: int, data: str) -> str:
    return f"event: {kind}\nid: {number}\ndata: {data}\n\n"


async def replay_events(
    ctx: ApiContext,
    replay_id: str,
    first: ReplayStatus,
    *,
    poll: float = 0.5,
    keepalive: float = 15.0,
) -> AsyncIterator[str]:
    """The stream of ``replay_id``, starting from its status ``first`` (already read, so an
    unknown replay is a 404, not an empty stream). Between polls it holds no thread: many
    clients can follow replays without starving the other requests' thread pool."""
    status, number = first, 1
    yield "retry: 2000\n\n"
    yield _event("progress", number, status.model_dump_json())
    quiet_since = time.monotonic()
    while not status.finished:
        await anyio.sleep(poll)
        try:
            latest = await anyio.to_thread.run_sync(actions.replay_status, ctx, replay_id)
        except FactflowReplayError as exc:
            body = {"code": status_of(exc)[1], "message": str(exc), "field": None}
            yield _event("error", number + 1, json.dumps(body))
            return
        if latest != status:
            status, number = latest, number + 1
            yield _event("progress", number, status.model_dump_json())
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since > keepalive:
            yield ": still running\n\n"
            quiet_since = time.monotonic()
    yield _event("end", number + 1, status.model_dump_json())
