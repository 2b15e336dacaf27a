"""The steps of ``replay_job``: plan, start, one publish per shard, finish.

Each step opens the core components from the resources and drives
:class:`~factflow_replay_dagster.replay.DetachedReplayService`; the shards' steps may run in
processes (or pods) of their own, each publishing its key range in key order.
"""

# No `from __future__ import annotations` here: Dagster reads op annotations at runtime.

__all__ = ["finish_replay", "plan_replay", "publish_shard", "start_replay"]

from collections.abc import Iterator
from typing import Any

import dagster as dg

from ...connect import Components
from ...replay import (
    DetachedReplayService,
    ReplayPlan,
    ReplayProgress,
    ReplayRequest,
    ReplayResult,
    ShardPlan,
    ShardResult,
)
from ...replay.service import ReplayStart
from ..assets import (
    asset_event_tags,
    executions_partitions,
    source_partition_path,
    stage_asset_key,
)
from ..progress import ProgressSink
from ..resources import ArtefactStoreResource, ExecutionStoreResource, QueueResource
from ..stale import close_stale_replays
from ._common import (
    add_run_tags,
    as_dagster_failure,
    interrupted,
    interruptible,
    mark_canceling,
    opened,
)
from ._replay_config import ReplayConfig


def _plan_metadata(plan: ReplayPlan) -> dict[str, Any]:
    return {
        "source_execution": plan.source_execution_id,
        "source": f"{plan.source_route}/{plan.from_stage}",
        "to_route": plan.to_route,
        "queue": plan.queue,
        "artefacts": plan.count,
        "bytes": plan.bytes,
        "first_key": plan.first_key,
        "last_key": plan.last_key,
        "location": plan.location,
        "already_confirmed": plan.already_confirmed,
        "completeness": plan.completeness,
    }


def _service(components: Components, executions: ExecutionStoreResource) -> DetachedReplayService:
    return DetachedReplayService(
        artefacts=components.artefacts,
        executions=components.executions,
        publisher=components.publisher,
        progress_every=executions.progress_every,
        stale_after=executions.replay_stale_seconds,
    )


@dg.op(
    out={"plan": dg.Out(ReplayPlan, description="The checked replay plan.")},
    description="Resolve the route from the parent's snapshot, check the queue, list and "
    "verify the artefacts. Publishes nothing.",
)
def plan_replay(
    context: dg.OpExecutionContext,
    config: ReplayConfig,
    artefacts: ArtefactStoreResource,
    executions: ExecutionStoreResource,
    queue: QueueResource,
) -> Iterator[dg.Output[ReplayPlan]]:
    with as_dagster_failure(), opened(artefacts, executions, queue) as components:
        request = config.to_request(context)
        service = _service(components, executions)
        if config.resume_replay_id:  # its process died? then its run ends here, not never
            close_stale_replays(
                context.instance,
                components.executions,
                stale_after=executions.replay_stale_seconds,
                replay_id=config.resume_replay_id,
            )
        plan = service.plan(request, resume_replay_id=config.resume_replay_id)
    add_run_tags(
        context,
        {
            "source_execution": plan.source_execution_id,
            "from_stage": plan.from_stage,
            "to_route": plan.to_route,
            # Also set at submission by replay_launch_tags (for the run queue's limits) when
            # the CLI or the API submits; a launch from the UI gets it here, for searching.
            "queue": plan.queue,
            "resumes": config.resume_replay_id,
        },
    )
    context.log.info(
        f"plan: {plan.count} artefacts ({plan.bytes} bytes) of {plan.source_route}/"
        f"{plan.from_stage} from {plan.source_execution_id} into route {plan.to_route} "
        f"(queue {plan.queue} from the parent's snapshot), {plan.first_key} .. {plan.last_key}"
    )
    if plan.completeness == "unknown":
        context.log.warning(
            f"completeness unknown: {plan.source_route}/{plan.from_stage} of "
            f"{plan.source_execution_id} has no manifest, so a filtered replay cannot tell "
            "whether storage lost some of the selected objects"
        )
    yield dg.Output(plan, output_name="plan", metadata=_plan_metadata(plan))


@dg.op(
    out={
        "started": dg.Out(description="The replay as created (None: a dry run)."),
        "shards": dg.DynamicOut(ShardPlan, description="The key ranges still to publish."),
    },
    description="Create the replay, its shards and its child execution (or reopen the "
    "replay a resume continues); a dry run creates nothing.",
)
def start_replay(
    context: dg.OpExecutionContext,
    config: ReplayConfig,
    plan: ReplayPlan,
    artefacts: ArtefactStoreResource,
    executions: ExecutionStoreResource,
    queue: QueueResource,
) -> Iterator[dg.Output[ReplayStart | None] | dg.DynamicOutput[ShardPlan]]:
    if config.dry_run:
        context.log.info("dry run: nothing was published and no child execution was created")
        yield dg.Output(None, output_name="started")
        return
    with as_dagster_failure(), opened(artefacts, executions, queue) as components:
        started = _service(components, executions).start(
            config.to_request(context), plan=plan, resume_replay_id=config.resume_replay_id
        )
    assert started is not None  # not a dry run
    add_run_tags(
        context,
        {"child_execution": started.child_execution_id, "replay_id": started.replay_id},
    )
    yield dg.Output(started, output_name="started")
    for shard in started.plan.shards:
        if not shard.done:
            yield dg.DynamicOutput(shard, output_name="shards", mapping_key=f"shard_{shard.index}")


@dg.op(
    description="Publish one shard (a contiguous key range) in key order with confirms; "
    "terminating the run stops at a message boundary and saves the shard's position.",
)
def publish_shard(
    context: dg.OpExecutionContext,
    config: ReplayConfig,
    started: ReplayStart,
    shard: ShardPlan,
    artefacts: ArtefactStoreResource,
    executions: ExecutionStoreResource,
    queue: QueueResource,
    progress: dg.ResourceParam[ProgressSink],
) -> dg.Output[ShardResult]:
    blocked: list[str | None] = [None]  # what the last update said of the broker

    def report(update: ReplayProgress) -> None:
        counts = f"replay {update.replay_id}: {update.confirmed}/{update.total} confirmed"
        if update.broker_blocked is not None:
            context.log.warning(
                f"{counts}; broker blocked ({update.broker_blocked}): shard {update.shard} "
                "waits, sending nothing and dropping nothing, until the broker's alarm clears"
            )
        elif blocked[0] is not None:
            context.log.info(f"{counts}; broker unblocked: shard {update.shard} publishes again")
        else:
            context.log.info(
                f"{counts} ({update.bytes} bytes, {update.rate:.0f} msg/s in shard "
                f"{update.shard}), last {update.last_key}"
            )
        blocked[0] = update.broker_blocked
        progress.report(update)

    with as_dagster_failure(), opened(artefacts, executions, queue) as components, interruptible():
        result = _service(components, executions).publish_shard(
            started, shard, should_stop=interrupted, on_progress=report
        )
    metadata = {
        "shard": shard.index,
        "state": result.state,
        "confirmed": result.confirmed,
        "total": result.total,
        "resent": result.resent,
        "seconds": round(result.seconds, 3),
        "first_key": shard.first_key,
        "last_key": shard.stop_at,
    }
    if result.state == "CANCELLED":
        context.log.warning(
            f"replay {started.replay_id}: shard {shard.index} cancelled after "
            f"{result.confirmed}/{result.total}; resume it with "
            f"resume_replay_id={started.replay_id!r}"
        )
        mark_canceling(
            context,
            f"replay {started.replay_id} stopped by an interrupt; its positions are saved",
        )
        raise dg.DagsterExecutionInterruptedError
    return dg.Output(result, metadata=metadata)


@dg.op(
    description="Once every shard succeeded: the end marker (the child's first stage then "
    "knows how many artefacts to expect), the replay SUCCEEDED, the materialization.",
)
def finish_replay(
    context: dg.OpExecutionContext,
    config: ReplayConfig,
    plan: ReplayPlan,
    started: ReplayStart | None,
    results: list[ShardResult],
    artefacts: ArtefactStoreResource,
    executions: ExecutionStoreResource,
    queue: QueueResource,
) -> dg.Output[ReplayResult]:
    if started is None:
        return dg.Output(
            ReplayResult(state="DRY_RUN", plan=plan, total=plan.count, bytes=plan.bytes),
            metadata=_plan_metadata(plan),
        )
    with as_dagster_failure(), opened(artefacts, executions, queue) as components:
        service = _service(components, executions)
        service.finish(started)
        record = components.executions.get_replay(started.replay_id)
    result = ReplayResult(
        state="SUCCEEDED",
        plan=started.plan,
        replay_id=started.replay_id,
        child_execution_id=started.child_execution_id,
        confirmed=record.confirmed,
        total=record.total,
        bytes=record.bytes_confirmed,
        resent=sum(r.resent for r in results),
        seconds=max((r.seconds for r in results), default=0.0),
        last_confirmed_key=record.last_confirmed_key,
    )
    request = config.to_request(context)
    metadata = _result_metadata(result, request)
    partitions = executions_partitions(plan.pipeline).name
    assert partitions is not None
    context.instance.add_dynamic_partitions(partitions, [started.child_execution_id])
    context.log_event(
        dg.AssetMaterialization(
            asset_key=stage_asset_key(plan.pipeline, plan.to_route, plan.target_stage),
            partition=started.child_execution_id,
            description=f"fed by replay {started.replay_id} of {plan.source_execution_id}",
            metadata=metadata,
            tags=asset_event_tags(
                {
                    "factflow/replay_id": started.replay_id,
                    "factflow/source_execution": plan.source_execution_id,
                }
            ),
        )
    )
    return dg.Output(result, metadata=metadata)


def _result_metadata(result: ReplayResult, request: ReplayRequest) -> dict[str, Any]:
    plan = result.plan
    return {
        "state": result.state,
        "replay_id": result.replay_id,
        "child_execution": result.child_execution_id,
        "source_execution": plan.source_execution_id,
        "source_route": plan.source_route,
        "source_stage": plan.from_stage,
        "queue": plan.queue,
        "confirmed": result.confirmed,
        "total": result.total,
        "bytes": result.bytes,
        "resent": result.resent,
        "seconds": round(result.seconds, 3),
        "reason": request.reason or "",
        "source_partition": dg.MetadataValue.url(
            source_partition_path(
                plan.pipeline, plan.source_route, plan.from_stage, plan.source_execution_id
            )
        ),
    }
