"""``replay_job``: plan, then publish a parent's stored artefacts into a route, as a child run.

Plan (publishes nothing) → start (the child execution and the replay's shards) → one
``publish_shard`` step per shard → finish (the end marker once every shard succeeded). The
steps live in ``_replay_steps``, the run config in ``_replay_config``.
"""

# No `from __future__ import annotations` here: Dagster reads config-mapping annotations.

__all__ = [
    "ReplayConfig",
    "execution_config",
    "finish_replay",
    "make_replay_job",
    "plan_replay",
    "publish_shard",
    "replay_job",
    "start_replay",
]

from typing import Any

import dagster as dg

from ._common import console_loggers
from ._replay_config import ReplayConfig
from ._replay_steps import finish_replay, plan_replay, publish_shard, start_replay

#: Every step reads the one run config.
_STEPS_WITH_CONFIG = ("plan_replay", "start_replay", "publish_shard", "finish_replay")


def execution_config(shards: int) -> dict[str, Any]:
    """For Dagster's default executor: one shard runs every step in the run's own process;
    more shards publish in as many processes at once (its multiprocess mode with
    ``max_concurrent: shards``). A job given an executor of its own gets no execution config
    from this: that executor's configuration decides (see :func:`make_replay_job`)."""
    if shards <= 1:
        return {"config": {"in_process": {}}}
    return {"config": {"multiprocess": {"max_concurrent": shards}}}


def make_replay_job(
    *, console_level: str | None = None, executor_def: dg.ExecutorDefinition | None = None
) -> dg.JobDefinition:
    """``replay_job``; ``console_level`` sets its console logger (see ``console_loggers``).

    Plan (publishes nothing) → start (creates the child execution and the replay's shards)
    → one ``publish_shard`` step per shard, each in key order → finish (the end marker,
    once every shard succeeded).

    Without ``executor_def`` the job runs on Dagster's default executor, in process for one
    shard and on ``shards`` processes for more (:func:`execution_config`). With one (for
    example ``k8s_job_executor``, each shard a pod), the run config carries no execution
    section: that executor's own configuration (``max_concurrent`` and so on) decides.
    """

    @dg.config_mapping
    def replay_config(config: ReplayConfig) -> dg.RunConfig:
        return dg.RunConfig(
            ops=dict.fromkeys(_STEPS_WITH_CONFIG, config),
            loggers=console_loggers(console_level),
            execution=execution_config(config.shards) if executor_def is None else None,
        )

    @dg.job(
        name="replay_job",
        config=replay_config,
        executor_def=executor_def,
        tags={"factflow/kind": "replay"},
        description="Cross-pipeline replay: publish a parent execution's stored artefacts of "
        "one stage into a route's queue as a new child execution. Nothing is fetched again.",
    )
    def replay_job() -> None:
        plan = plan_replay()
        started, shards = start_replay(plan)
        results = shards.map(lambda shard: publish_shard(started, shard))
        finish_replay(plan, started, results.collect())

    return replay_job


replay_job = make_replay_job()
