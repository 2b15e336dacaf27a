"""The ``factflow/*`` tags the plugin's Dagster runs carry, named once.

Most are for finding runs in the UI. Four also limit concurrency in the production instance
profile (``deploy/dagster.production.yaml``): a queued run coordinator decides from the tags
a run has *when it is submitted*, so whoever submits a run sets them then
(:func:`~factflow_replay_dagster.replay.launch.replay_launch_tags`,
:func:`~factflow_replay_dagster.recovery.launch.recovery_launch_tags`); tags an op adds
while the run executes come too late for the queue.
"""

from __future__ import annotations

__all__ = [
    "CHILD_EXECUTION",
    "EXECUTION",
    "FROM_STAGE",
    "KIND",
    "QUEUE",
    "REPLAY_ID",
    "REQUESTED_BY",
    "SOURCE_EXECUTION",
    "TAG_PREFIX",
    "TO_ROUTE",
]

TAG_PREFIX = "factflow/"

#: What the run does: ``replay``, ``recovery``, ``rerun`` or ``verify`` (a job tag; limited
#: per value in the production profile).
KIND = f"{TAG_PREFIX}kind"
#: The replay's parent execution (limited per value: replays of one source at a time).
SOURCE_EXECUTION = f"{TAG_PREFIX}source_execution"
#: The broker queue a replay publishes into, from the parent's snapshot (limited per value).
QUEUE = f"{TAG_PREFIX}queue"
#: The route a replay feeds, and the parent's stage it reads.
TO_ROUTE = f"{TAG_PREFIX}to_route"
FROM_STAGE = f"{TAG_PREFIX}from_stage"
#: The replay's id, when known before the run starts (named, or a resume).
REPLAY_ID = f"{TAG_PREFIX}replay_id"
#: The child execution a replay created (added by the run).
CHILD_EXECUTION = f"{TAG_PREFIX}child_execution"
#: The execution a recovery or rerun works on.
EXECUTION = f"{TAG_PREFIX}execution"
#: Who asked: ``cli``, ``api``, ``demo`` (absent: a sensor or the UI).
REQUESTED_BY = f"{TAG_PREFIX}requested_by"
