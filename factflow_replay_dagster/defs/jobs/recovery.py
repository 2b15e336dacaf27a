"""``recovery_job`` and ``rerun_stage_job``: thin Dagster shells over the recovery core."""

# No `from __future__ import annotations` here: Dagster reads op annotations at runtime.

__all__ = [
    "RecoveryConfig",
    "RerunConfig",
    "make_recovery_job",
    "make_rerun_stage_job",
    "recover_execution",
    "recovery_job",
    "rerun_stage",
    "rerun_stage_job",
]

import dagster as dg
from pydantic import Field

from ...ids import validate_id
from ...recovery import (
    RecoveryManager,
    RecoveryOptions,
    RecoveryResult,
    RerunRequest,
    RerunResult,
    RerunService,
)
from ..assets import executions_partitions, stage_asset_key
from ..resources import ArtefactStoreResource, ExecutionStoreResource, QueueResource
from ._common import (
    add_run_tags,
    as_dagster_failure,
    config_field,
    console_loggers,
    opened,
    requested_by,
)


class RecoveryConfig(dg.Config):
    """Run config of ``recovery_job``: the execution, and the fields of the core's
    ``RecoveryOptions`` (the HTTP API's body), with their texts."""

    execution_id: str = Field(
        description="The FAILED execution to restart from its last succeeded stage."
    )
    reason: str | None = config_field(RecoveryOptions, "reason")
    force: bool = config_field(RecoveryOptions, "force")


class RerunConfig(dg.Config):
    """Run config of ``rerun_stage_job``: the fields of the core's ``RerunRequest`` (the HTTP
    API's body), with their texts."""

    execution_id: str = config_field(RerunRequest, "execution_id")
    stage: str = config_field(RerunRequest, "stage")
    route: str | None = config_field(RerunRequest, "route")
    only_this_stage: bool = config_field(RerunRequest, "only_this_stage")
    reason: str | None = config_field(RerunRequest, "reason")

    def to_request(self) -> RerunRequest:
        """The core request; bad ids raise the package's typed errors."""
        return RerunRequest.parse(self.model_dump())


def _observe(
    context: dg.OpExecutionContext,
    pipeline: str,
    route: str,
    stage: str,
    execution_id: str,
    description: str,
    metadata: dict[str, object],
) -> None:
    """An observation on the restarted stage's partition, so the asset view shows it."""
    partitions = executions_partitions(pipeline).name
    assert partitions is not None
    context.instance.add_dynamic_partitions(partitions, [execution_id])
    context.log_event(
        dg.AssetObservation(
            asset_key=stage_asset_key(pipeline, route, stage),
            partition=execution_id,
            description=description,
            metadata=metadata,  # type: ignore[arg-type]
        )
    )


@dg.op(
    description="Restart a FAILED execution at its first unfinished stage, from the "
    "stored artefacts of the stage before; refuses clearly otherwise."
)
def recover_execution(
    context: dg.OpExecutionContext,
    config: RecoveryConfig,
    artefacts: ArtefactStoreResource,
    executions: ExecutionStoreResource,
    queue: QueueResource,
) -> dg.Output[RecoveryResult]:
    with as_dagster_failure(), opened(artefacts, executions, queue) as components:
        execution_id = validate_id(config.execution_id, kind="execution")
        add_run_tags(context, {"execution": execution_id})
        manager = RecoveryManager(
            artefacts=components.artefacts,
            executions=components.executions,
            publisher=components.publisher,
            max_attempts=executions.recovery_max_attempts,
            settle_seconds=executions.recovery_settle_seconds,
        )
        result = manager.recover(
            execution_id,
            reason=config.reason,
            requested_by=requested_by(context),
            dagster_run_id=context.run_id,
            force=config.force,
        )
        pipeline = components.executions.get_execution(execution_id).pipeline
    add_run_tags(context, {"recovery": str(result.recovery)})
    metadata: dict[str, object] = {
        "recovery": result.recovery,
        "attempt": result.attempt,
        "restart": f"{result.restart_route}/{result.restart_stage}",
        "queue": result.queue,
        "input": f"{result.input.route}/{result.input.stage}",
        "input_artefacts": result.input_artefacts,
        "init_message_id": result.init_message_id,
        "reason": config.reason or "",
    }
    context.log.info(
        f"recovery {result.recovery} of {execution_id}: restart at "
        f"{result.restart_route}/{result.restart_stage} (attempt {result.attempt}) "
        f"from {result.input_artefacts} stored artefacts"
    )
    _observe(
        context,
        pipeline,
        result.restart_route,
        result.restart_stage,
        execution_id,
        f"recovery {result.recovery} restarted here",
        metadata,
    )
    return dg.Output(result, metadata=metadata)  # type: ignore[arg-type]


@dg.op(description="Rerun one stage of an execution (and what follows) from its stored input.")
def rerun_stage(
    context: dg.OpExecutionContext,
    config: RerunConfig,
    artefacts: ArtefactStoreResource,
    executions: ExecutionStoreResource,
    queue: QueueResource,
) -> dg.Output[RerunResult]:
    with as_dagster_failure(), opened(artefacts, executions, queue) as components:
        request = config.to_request()
        service = RerunService(
            artefacts=components.artefacts,
            executions=components.executions,
            publisher=components.publisher,
        )
        result = service.rerun(
            request.execution_id,
            request.stage,
            route=request.route,
            only_this_stage=request.only_this_stage,
            reason=request.reason,
            requested_by=requested_by(context),
            dagster_run_id=context.run_id,
        )
        pipeline = components.executions.get_execution(result.execution_id).pipeline
    add_run_tags(
        context, {"execution": result.execution_id, "stage": result.stage, "route": result.route}
    )
    metadata: dict[str, object] = {
        "attempt": result.attempt,
        "queue": result.queue,
        "stages": ", ".join(result.stages),
        "init_message_id": result.init_message_id,
        "reason": config.reason or "",
    }
    _observe(
        context,
        pipeline,
        result.route,
        result.stage,
        result.execution_id,
        f"rerun as attempt {result.attempt}",
        metadata,
    )
    return dg.Output(result, metadata=metadata)  # type: ignore[arg-type]


def make_recovery_job(*, console_level: str | None = None) -> dg.JobDefinition:
    """``recovery_job``; ``console_level`` sets its console logger."""

    @dg.config_mapping
    def recovery_config(config: RecoveryConfig) -> dg.RunConfig:
        return dg.RunConfig(
            ops={"recover_execution": config}, loggers=console_loggers(console_level)
        )

    @dg.job(
        name="recovery_job",
        config=recovery_config,
        tags={"factflow/kind": "recovery"},
        description="Recover a failed execution from its last succeeded stage (one init message).",
    )
    def recovery_job() -> None:
        recover_execution()

    return recovery_job


def make_rerun_stage_job(*, console_level: str | None = None) -> dg.JobDefinition:
    """``rerun_stage_job``; ``console_level`` sets its console logger."""

    @dg.config_mapping
    def rerun_config(config: RerunConfig) -> dg.RunConfig:
        return dg.RunConfig(ops={"rerun_stage": config}, loggers=console_loggers(console_level))

    @dg.job(
        name="rerun_stage_job",
        config=rerun_config,
        tags={"factflow/kind": "rerun"},
        description="Rerun one stage of an execution inside it, from the stored artefacts.",
    )
    def rerun_stage_job() -> None:
        rerun_stage()

    return rerun_stage_job


recovery_job = make_recovery_job()
rerun_stage_job = make_rerun_stage_job()
