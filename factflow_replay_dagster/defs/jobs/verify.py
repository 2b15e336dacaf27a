"""``verify_stored_job``: check that storage still holds what lineage recorded, per partition."""

# No `from __future__ import annotations` here: Dagster reads op annotations at runtime.

__all__ = ["VerifyConfig", "make_verify_stored_job", "verify_stored", "verify_stored_job"]

import dagster as dg
from pydantic import Field

from ...executions import StageStatus
from ...ids import validate_id
from ...verification import verify_stage
from ..assets import check_evaluation, stage_asset_key
from ..resources import ArtefactStoreResource, ExecutionStoreResource
from ._common import as_dagster_failure, console_loggers


class VerifyConfig(dg.Config):
    """Run config of ``verify_stored_job``."""

    execution_ids: list[str] = Field(
        default_factory=list, description="Executions to verify (default: the newest `recent`)."
    )
    recent: int = Field(default=20, ge=1, description="With no ids: how many newest executions.")


@dg.op(
    description="Count every succeeded stage's stored objects against lineage and report "
    "the stored_objects_match_lineage check on each partition."
)
def verify_stored(
    context: dg.OpExecutionContext,
    config: VerifyConfig,
    artefacts: ArtefactStoreResource,
    executions: ExecutionStoreResource,
) -> dg.Output[int]:
    failed = 0
    with as_dagster_failure(), artefacts.open() as store, executions.open() as records:
        ids = [validate_id(i, kind="execution") for i in config.execution_ids] or [
            e.id for e in records.list_executions(limit=config.recent)
        ]
        for execution in records.get_executions(ids).values():
            for row in records.lineage(execution.id):
                if row.status is not StageStatus.SUCCEEDED:
                    continue
                result = verify_stage(store, records, execution.id, row.route, row.stage)
                failed += not result.passed
                asset_key = stage_asset_key(execution.pipeline, row.route, row.stage)
                context.log_event(
                    check_evaluation(asset_key, result)  # type: ignore[arg-type]  # accepted at runtime; its annotation lags
                )
    context.log.info(f"verified {len(ids)} executions: {failed} stage partitions missing objects")
    return dg.Output(failed, metadata={"executions": len(ids), "failed_partitions": failed})


def make_verify_stored_job(*, console_level: str | None = None) -> dg.JobDefinition:
    """``verify_stored_job``; ``console_level`` sets its console logger."""

    @dg.config_mapping
    def verify_config(config: VerifyConfig) -> dg.RunConfig:
        return dg.RunConfig(ops={"verify_stored": config}, loggers=console_loggers(console_level))

    @dg.job(
        name="verify_stored_job",
        config=verify_config,
        tags={"factflow/kind": "verify"},
        description="Check that storage still holds every object lineage recorded.",
    )
    def verify_stored_job() -> None:
        verify_stored()

    return verify_stored_job


verify_stored_job = make_verify_stored_job()
