"""Typed requests, plans, progress and results of a cross-pipeline (detached) replay."""

from __future__ import annotations

__all__ = [
    "RESUME_DESCRIPTION",
    "ReplayPlan",
    "ReplayProgress",
    "ReplayRequest",
    "ReplayResult",
    "new_replay_id",
]

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from .._validation import validated
from ..ids import new_id, validate_id

ExecutionId = Annotated[str, AfterValidator(lambda v: validate_id(v, kind="execution"))]
RouteId = Annotated[str, AfterValidator(lambda v: validate_id(v, kind="route"))]
StageId = Annotated[str, AfterValidator(lambda v: validate_id(v, kind="stage"))]
ReplayId = Annotated[str, AfterValidator(lambda v: validate_id(v, kind="replay"))]


#: What :meth:`DetachedReplayService.resume` continues: shared by every entry point.
RESUME_DESCRIPTION = (
    "Resume this cancelled or failed replay after its last confirmed artefact "
    "(repeat its other fields)."
)


def _glob(pattern: str | None) -> str | None:
    """A ``match`` glob as ``fnmatch`` reads it; a ``[`` that opens no set is refused (fnmatch
    would take it literally and match nothing you meant)."""
    if pattern is None:
        return None
    index = 0
    while (index := pattern.find("[", index)) != -1:
        end = index + 1
        if end < len(pattern) and pattern[end] == "!":
            end += 1
        if end < len(pattern) and pattern[end] == "]":
            end += 1
        close = pattern.find("]", end)
        if close == -1:
            raise ValueError(f"{pattern!r} opens a [set] at position {index} and never closes it")
        index = close + 1
    return pattern


def new_replay_id(run_id: str | None = None) -> str:
    """The one way a replay id is made: named after the Dagster run that starts the replay
    (its root run, shared by the run's retries, so a retry resumes instead of sending again),
    or fresh and sortable outside Dagster."""
    if run_id is None:
        return new_id("replay")
    return validate_id(f"replay-{run_id}", kind="replay")


class ReplayRequest(BaseModel):
    """What to replay: a parent execution's stored ``from_stage`` artefacts into ``to_route``.

    The one schema of a replay request: the Dagster run config (``ReplayConfig``), the CLI's
    options and the HTTP API's body take their fields and help texts from here. Build it
    from untrusted input with :meth:`parse`: bad ids raise
    :class:`~factflow_replay_dagster.errors.InvalidIdError`, other problems
    :class:`~factflow_replay_dagster.errors.InvalidInputError`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    source_execution_id: ExecutionId = Field(
        description="The parent execution whose stored artefacts are replayed."
    )
    from_stage: StageId = Field(description="The parent's stage whose stored artefacts are sent.")
    to_route: RouteId = Field(
        description="The route to feed; its queue comes from the parent's config snapshot."
    )
    source_route: RouteId | None = Field(
        default=None, description="The route holding from_stage; only needed if it is ambiguous."
    )
    match: Annotated[str | None, AfterValidator(_glob)] = Field(
        default=None, max_length=256, description="Glob on object names, e.g. 'news-00*.json'."
    )
    limit: int | None = Field(default=None, ge=1, description="Replay at most this many artefacts.")
    rate: float | None = Field(
        default=None, gt=0, description="At most this many messages per second."
    )
    dry_run: bool = Field(default=False, description="Plan and report only; publish nothing.")
    reason: str | None = Field(
        default=None, max_length=2000, description="Why: kept in the child's provenance."
    )
    child_execution_id: ExecutionId | None = Field(
        default=None, description="Id for the child execution (default: generated)."
    )
    replay_id: ReplayId | None = Field(
        default=None, description="Id for the replay (default: generated)."
    )
    requested_by: str | None = Field(
        default=None, max_length=255, description="Who asked: cli, api, a sensor, a user."
    )
    dagster_run_id: str | None = Field(
        default=None, max_length=64, description="The Dagster run publishing this replay."
    )

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> ReplayRequest:
        return validated(cls, data, what="replay request")

    @classmethod
    def user_fields(cls) -> list[str]:
        """The fields a person sets (the rest are filled in by whoever runs the replay)."""
        return [name for name in cls.model_fields if name not in _SET_BY_THE_RUNNER]


#: Fields of a request the entry point fills in, not the person asking.
_SET_BY_THE_RUNNER = frozenset({"requested_by", "dagster_run_id"})


#: How a plan knows nothing it replays was lost (see ``ReplayPlan.completeness``).
Completeness = Literal["manifest", "count", "unknown"]


class ReplayPlan(BaseModel):
    """The checked plan: route resolved from the parent's snapshot, artefacts listed."""

    model_config = ConfigDict(frozen=True)

    source_execution_id: str
    pipeline: str
    pipeline_version: str
    source_route: str
    from_stage: str
    to_route: str
    target_stage: str = Field(description="The first stage of to_route, which consumes the queue.")
    queue: str
    location: str
    prefix: str
    count: int
    bytes: int
    first_key: str
    last_key: str
    match: str | None = None
    limit: int | None = None
    resume_after: str | None = Field(default=None, description="Resume: last confirmed key.")
    already_confirmed: int = 0
    completeness: Completeness = Field(
        default="unknown",
        description="How the plan knows nothing is missing: 'manifest', every selected key the "
        "stage recorded is stored; 'count', as many objects as lineage counted (an unfiltered "
        "replay of a stage without a manifest); 'unknown', neither could be checked (a "
        "filtered replay of a stage without a manifest, or an execution never recorded).",
    )


class ReplayProgress(BaseModel):
    """Progress of a running replay, reported as it is saved."""

    model_config = ConfigDict(frozen=True)

    replay_id: str
    confirmed: int
    total: int
    bytes: int
    rate: float = Field(description="Confirmed messages per second since this run started.")
    last_key: str | None


class ReplayResult(BaseModel):
    """How a replay ended. ``state`` is SUCCEEDED, CANCELLED or DRY_RUN (failures raise)."""

    model_config = ConfigDict(frozen=True)

    state: Literal["SUCCEEDED", "CANCELLED", "DRY_RUN"]
    plan: ReplayPlan
    replay_id: str | None = None
    child_execution_id: str | None = None
    confirmed: int = 0
    total: int = 0
    bytes: int = 0
    resent: int = 0
    seconds: float = 0.0
    last_confirmed_key: str | None = None

    @property
    def rate(self) -> float:
        return self.confirmed / self.seconds if self.seconds > 0 else 0.0
