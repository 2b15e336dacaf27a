"""Does storage still hold what lineage recorded? The check behind the asset view's red marks."""

from __future__ import annotations

__all__ = ["StageVerification", "verify_stage"]

from dataclasses import dataclass

from .executions import ExecutionStore, StageStatus
from .layout import stage_prefix
from .storage.base import ArtefactStore, summarize


@dataclass(frozen=True, slots=True)
class StageVerification:
    """Lineage's count against storage's for one stage of one execution."""

    execution_id: str
    route: str
    stage: str
    status: str
    recorded: int
    stored: int
    bytes: int
    location: str

    @property
    def passed(self) -> bool:
        """A stage that succeeded must still hold at least what it recorded."""
        return self.status != StageStatus.SUCCEEDED.value or self.stored >= self.recorded

    @property
    def missing(self) -> int:
        return max(self.recorded - self.stored, 0)

    def describe(self) -> str:
        if self.passed:
            return f"{self.stored} objects stored, lineage recorded {self.recorded}"
        return (
            f"{self.missing} of {self.recorded} objects recorded by lineage are missing from "
            f"{self.location}"
        )


def verify_stage(
    artefacts: ArtefactStore,
    executions: ExecutionStore,
    execution_id: str,
    route: str,
    stage: str,
) -> StageVerification:
    """Count the stage's stored objects (one streamed listing) and compare with lineage."""
    row = executions.stage_lineage(execution_id, route, stage)
    prefix = stage_prefix(execution_id, route, stage)
    stored = summarize(artefacts, prefix)
    return StageVerification(
        execution_id=execution_id,
        route=route,
        stage=stage,
        status=row.status.value if row is not None else "UNRECORDED",
        recorded=row.artefact_count if row is not None else 0,
        stored=stored.count,
        bytes=stored.bytes,
        location=f"{artefacts.location}/{prefix}",
    )
