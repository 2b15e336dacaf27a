"""``replay_job``: plan, then publish a parent's stored artefacts into a route, as a child run."""

# No `from __future__ import annotations` here: Dagster reads op and config-mapping
# annotations at runtime to build their config schemas and inputs.

__all__ = ["ReplayConfig", "plan_replay", "publish_replay", "replay_job"]

from collections.abc import Iterator
from typing import Any

import dagster as dg
from pydantic import Field

from ..assets import executions_partitions, source_partition_path, stage_asset_key
from ..connect import Components
from ..replay import DetachedReplayService, ReplayPlan, ReplayProgress, ReplayRequest, ReplayResult
from ..resources import ArtefactStoreResource, ExecutionStoreResource, QueueResource
from ._common import (
    add_run_tags,
    as_dagster_failure,
    interrupted,
    interruptible,
    mark_canceling,
    opened,
)


class ReplayConfig(dg.Config):
    """Run config of ``replay_job`` (the launchpad shows and validates every field)."""

    source_execution_id: str = Field(description="Parent execution whose artefacts are replayed.")
    from_stage: str = Field(description="Stage of the parent whose stored artefacts are sent.")
    to_route: str = Field(
        description="Route to feed; its queue comes from the parent's config snapshot."
    )
    source_route: str | None = Field(
        default=None, description="Route holding from_stage; only needed if it is ambiguous."
    )
    match: str | None = Field(default=None, description="Glob on object names, e.g. 'news-0*'.")
    limit: int | None = Field(default=None, description="Replay at most this many artefacts.")
    rate: float | None = Field(default=None, description="At most this many messages per second.")
    dry_run: bool = Field(default=False, description="Plan and report only; publish nothing.")
    reason: str | None = Field(default=None, description="Why: kept in the child's provenance.")
    resume_replay_id: str | None = Field(
        default=None,
        description="Resume this cancelled or failed replay after its last "
        "confirmed artefact (repeat its other fields).",
    )
    child_execution_id: str | None = Field(
        default=None, description="Id for the child execution (default: generated)."
    )
    replay_id: str | None = Field(
        default=None, description="Id for the replay (default: generated)."
    )

    def to_request(self, context: dg.OpExecutionContext) -> ReplayRequest:
        """The core request; bad ids raise the package's typed errors.

        Without an explicit ``replay_id`` the replay is named after the run's root run, which a
        run and all its retries (``dagster/max_retries``) share: a retry resumes the replay its
        first run started instead of sending everything again.
        """
        fields = self.model_dump(exclude={"resume_replay_id"})
        root = context.run.tags.get("dagster/root_run_id", context.run_id)
        fields["replay_id"] = self.replay_id or f"replay-{root}"
        return ReplayRequest.parse({**fields, "dagster_run_id": context.run_id})


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
    }


def _service(components: Components, executions: ExecutionStoreResource) -> DetachedReplayService:
    return DetachedReplayService(
        artefacts=components.artefacts,
        executions=components.executions,
        publisher=components.publisher,
        progress_every=executions.replay_progress_every,
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
        plan = service.plan(request, resume_replay_id=config.resume_replay_id)
    add_run_tags(
        context,
        {
            "source_execution": plan.source_execution_id,
            "from_stage": plan.from_stage,
            "to_route": plan.to_route,
            "resumes": config.resume_replay_id,
        },
    )
    context.log.info(
        f"plan: {plan.count} artefacts ({plan.bytes} bytes) of {plan.source_route}/"
        f"{plan.from_stage} from {plan.source_execution_id} into route {plan.to_route} "
        f"(queue {plan.queue} from the parent's snapshot), {plan.first_key} .. {plan.last_key}"
    )
    yield dg.Output(plan, output_name="plan", metadata=_plan_metadata(plan))


@dg.op(
    description="Create the child execution and publish every planned artefact with "
    "confirms; terminating the run stops at a message boundary and saves the position. "
    "A dry run stops before this op publishes or creates anything.",
)
def publish_replay(
    context: dg.OpExecutionContext,
    config: ReplayConfig,
    plan: ReplayPlan,
    artefacts: ArtefactStoreResource,
    executions: ExecutionStoreResource,
    queue: QueueResource,
) -> dg.Output[ReplayResult]:
    if config.dry_run:
        context.log.info("dry run: nothing was published and no child execution was created")
        return dg.Output(
            ReplayResult(state="DRY_RUN", plan=plan, total=plan.count, bytes=plan.bytes),
            metadata=_plan_metadata(plan),
        )

    def progress(update: ReplayProgress) -> None:
        context.log.info(
            f"replay {update.replay_id}: {update.confirmed}/{update.total} confirmed "
            f"({update.bytes} bytes, {update.rate:.0f} msg/s), last {update.last_key}"
        )

    with as_dagster_failure(), opened(artefacts, executions, queue) as components, interruptible():
        request = config.to_request(context)
        service = _service(components, executions)
        result = service.run(
            request,
            plan=plan,
            resume_replay_id=config.resume_replay_id,
            should_stop=interrupted,
            on_progress=progress,
        )
    if result.child_execution_id is None or result.replay_id is None:  # pragma: no cover
        raise dg.Failure("a replay that ran has a child execution and a replay id")
    add_run_tags(
        context, {"child_execution": result.child_execution_id, "replay_id": result.replay_id}
    )
    metadata = _result_metadata(result, request)
    partitions = executions_partitions(plan.pipeline).name
    assert partitions is not None
    context.instance.add_dynamic_partitions(partitions, [result.child_execution_id])
    context.log_event(
        dg.AssetMaterialization(
            asset_key=stage_asset_key(plan.pipeline, plan.to_route, plan.target_stage),
            partition=result.child_execution_id,
            description=f"fed by replay {result.replay_id} of {plan.source_execution_id}",
            metadata=metadata,
            tags={
                "factflow/replay_id": result.replay_id,
                "factflow/source_execution": plan.source_execution_id,
            },
        )
    )
    if result.state == "CANCELLED":
        context.log.warning(
            f"replay {result.replay_id} cancelled after {result.confirmed}/{result.total}; "
            f"resume it with resume_replay_id={result.replay_id!r}"
        )
        mark_canceling(
            context,
            f"replay {result.replay_id} stopped by an interrupt; "
            f"{result.confirmed}/{result.total} confirmed and saved",
        )
        raise dg.DagsterExecutionInterruptedError
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


@dg.config_mapping
def _replay_config(config: ReplayConfig) -> dg.RunConfig:
    return dg.RunConfig(ops={"plan_replay": config, "publish_replay": config})


@dg.job(
    config=_replay_config,
    tags={"factflow/kind": "replay"},
    description="Cross-pipeline replay: publish a parent execution's stored artefacts of one "
    "stage into a route's queue as a new child execution. Nothing is fetched again.",
)
def replay_job() -> None:
    publish_replay(plan_replay())
