"""``replay_job``: plan, then publish a parent's stored artefacts into a route, as a child run."""

# No `from __future__ import annotations` here: Dagster reads op and config-mapping
# annotations at runtime to build their config schemas and inputs.

__all__ = ["ReplayConfig", "make_replay_job", "plan_replay", "publish_replay", "replay_job"]

from collections.abc import Iterator
from typing import Any

import dagster as dg
from pydantic import Field

from ...connect import Components
from ...replay import (
    RESUME_DESCRIPTION,
    DetachedReplayService,
    ReplayPlan,
    ReplayProgress,
    ReplayRequest,
    ReplayResult,
    new_replay_id,
)
from ..assets import executions_partitions, source_partition_path, stage_asset_key
from ..progress import ProgressSink
from ..resources import ArtefactStoreResource, ExecutionStoreResource, QueueResource
from ..stale import close_stale_replays
from ._common import (
    add_run_tags,
    as_dagster_failure,
    config_field,
    console_loggers,
    interrupted,
    interruptible,
    mark_canceling,
    opened,
    requested_by,
)


def _request_field(name: str) -> Any:
    """A run-config field with the default and help text of ``ReplayRequest.<name>``."""
    return config_field(ReplayRequest, name)


class ReplayConfig(dg.Config):
    """Run config of ``replay_job``: the fields of the core's ``ReplayRequest`` (the launchpad
    shows and validates every one; their texts come from the request), and a resume."""

    source_execution_id: str = _request_field("source_execution_id")
    from_stage: str = _request_field("from_stage")
    to_route: str = _request_field("to_route")
    source_route: str | None = _request_field("source_route")
    match: str | None = _request_field("match")
    limit: int | None = _request_field("limit")
    rate: float | None = _request_field("rate")
    dry_run: bool = _request_field("dry_run")
    reason: str | None = _request_field("reason")
    child_execution_id: str | None = _request_field("child_execution_id")
    replay_id: str | None = _request_field("replay_id")
    resume_replay_id: str | None = Field(default=None, description=RESUME_DESCRIPTION)

    def to_request(self, context: dg.OpExecutionContext) -> ReplayRequest:
        """The core request; bad ids raise the package's typed errors.

        Without an explicit ``replay_id`` the replay is named after the run's root run, which a
        run and all its retries (``dagster/max_retries``) share: a retry resumes the replay its
        first run started instead of sending everything again.
        """
        fields = self.model_dump(exclude={"resume_replay_id"})
        root = context.run.tags.get("dagster/root_run_id", context.run_id)
        fields["replay_id"] = self.replay_id or new_replay_id(root)
        fields["requested_by"] = requested_by(context)
        fields["dagster_run_id"] = context.run_id
        return ReplayRequest.parse(fields)


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
    progress: dg.ResourceParam[ProgressSink],
) -> dg.Output[ReplayResult]:
    if config.dry_run:
        context.log.info("dry run: nothing was published and no child execution was created")
        return dg.Output(
            ReplayResult(state="DRY_RUN", plan=plan, total=plan.count, bytes=plan.bytes),
            metadata=_plan_metadata(plan),
        )

    def report(update: ReplayProgress) -> None:
        context.log.info(
            f"replay {update.replay_id}: {update.confirmed}/{update.total} confirmed "
            f"({update.bytes} bytes, {update.rate:.0f} msg/s), last {update.last_key}"
        )
        progress.report(update)

    with as_dagster_failure(), opened(artefacts, executions, queue) as components, interruptible():
        request = config.to_request(context)
        service = _service(components, executions)
        result = service.run(
            request,
            plan=plan,
            resume_replay_id=config.resume_replay_id,
            should_stop=interrupted,
            on_progress=report,
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


def make_replay_job(*, console_level: str | None = None) -> dg.JobDefinition:
    """``replay_job``; ``console_level`` sets its console logger (see ``console_loggers``)."""

    @dg.config_mapping
    def replay_config(config: ReplayConfig) -> dg.RunConfig:
        return dg.RunConfig(
            ops={"plan_replay": config, "publish_replay": config},
            loggers=console_loggers(console_level),
        )

    @dg.job(
        name="replay_job",
        config=replay_config,
        tags={"factflow/kind": "replay"},
        description="Cross-pipeline replay: publish a parent execution's stored artefacts of "
        "one stage into a route's queue as a new child execution. Nothing is fetched again.",
    )
    def replay_job() -> None:
        publish_replay(plan_replay())

    return replay_job


replay_job = make_replay_job()
