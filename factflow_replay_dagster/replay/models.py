"""Typed requests, plans, progress and results of a cross-pipeline (detached) replay."""

from __future__ import annotations

__all__ = [
    "RESUME_DESCRIPTION",
    "ReplayOptions",
    "ReplayPlan",
    "ReplayProgress",
    "ReplayRequest",
    "ReplayResult",
    "ReplayStatus",
    "new_child_execution_id",
    "new_replay_id",
]

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from .._validation import validated
from ..ids import ExecutionId, ReplayId, RouteId, StageId, new_id, validate_id

if TYPE_CHECKING:
    from ..executions.records import ReplayRecord


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


def new_child_execution_id(pipeline: str) -> str:
    """The one way a replay's child execution is named when the request names none."""
    return new_id(f"{pipeline}-replay")


#: More shards than this is a mistake, not a plan (one step, one connection each).
MAX_SHARDS = 64


class ReplayOptions(BaseModel):
    """What a person chooses about a replay of a given execution: everything but which
    execution (the HTTP API takes that from its path) and who runs it.

    The body of ``POST /api/v1/executions/{id}/replay``; :class:`ReplayRequest` adds the
    source execution and what the runner fills in.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

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
    shards: int = Field(
        default=1,
        ge=1,
        le=MAX_SHARDS,
        description="Publish in this many contiguous key ranges at once, each its own Dagster "
        "step: order holds within a shard; 1 keeps the whole replay in key order.",
    )


class ReplayRequest(ReplayOptions):
    """What to replay: a parent execution's stored ``from_stage`` artefacts into ``to_route``.

    The one schema of a replay request: the Dagster run config (``ReplayConfig``), the CLI's
    options and the HTTP API's body (:class:`ReplayOptions`) take their fields and help texts
    from here. Build it from untrusted input with :meth:`parse`: bad ids raise
    :class:`~factflow_replay_dagster.errors.InvalidIdError`, other problems
    :class:`~factflow_replay_dagster.errors.InvalidInputError`.
    """

    source_execution_id: ExecutionId = Field(
        description="The parent execution whose stored artefacts are replayed."
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
    def of(
        cls,
        source_execution_id: str,
        options: ReplayOptions,
        *,
        requested_by: str | None = None,
        dagster_run_id: str | None = None,
    ) -> ReplayRequest:
        """The request replaying ``source_execution_id`` with a person's ``options``."""
        return cls.parse(
            {
                **options.model_dump(),
                "source_execution_id": source_execution_id,
                "requested_by": requested_by,
                "dagster_run_id": dagster_run_id,
            }
        )

    @classmethod
    def user_fields(cls) -> list[str]:
        """The fields a person sets, the source execution first (the rest are filled in by
        whoever runs the replay)."""
        return ["source_execution_id", *ReplayOptions.model_fields]

    def options(self) -> ReplayOptions:
        """The person's choices, without the source execution and the runner's fields."""
        return ReplayOptions.model_validate(
            self.model_dump(include=set(ReplayOptions.model_fields))
        )


#: How a plan knows nothing it replays was lost (see ``ReplayPlan.completeness``).
Completeness = Literal["manifest", "count", "unknown"]


class ShardPlan(BaseModel):
    """One contiguous key range of a replay, ``(start_after, stop_at]``, published by one
    step in key order; a resume starts after ``resume_after``."""

    model_config = ConfigDict(frozen=True)

    index: int
    start_after: str | None
    stop_at: str
    first_key: str
    count: int
    bytes: int
    resume_after: str | None = None
    already_confirmed: int = 0
    done: bool = Field(default=False, description="Resume: this shard already succeeded.")


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
    shards: list[ShardPlan] = Field(
        default_factory=list, description="The key ranges, in key order (one at least)."
    )
    completeness: Completeness = Field(
        default="unknown",
        description="How the plan knows nothing is missing: 'manifest', every selected key the "
        "stage recorded is stored; 'count', as many objects as lineage counted (an unfiltered "
        "replay of a stage without a manifest); 'unknown', neither could be checked (a "
        "filtered replay of a stage without a manifest, or an execution never recorded).",
    )


class ReplayProgress(BaseModel):
    """Progress of a running replay, reported as it is saved (of one shard's step: the
    replay's totals as this step knows them, the other shards as they were when it began)."""

    model_config = ConfigDict(frozen=True)

    replay_id: str
    confirmed: int
    total: int
    bytes: int
    rate: float = Field(description="Confirmed messages per second since this step started.")
    last_key: str | None
    shard: int = 0
    broker_blocked: str | None = Field(
        default=None,
        description="While the broker blocks publishers (RabbitMQ's memory or disk alarm), "
        "its reason, e.g. 'low on memory': the replay waits, sending nothing and dropping "
        "nothing, and continues when the alarm clears. None while messages flow.",
    )


class ShardResult(BaseModel):
    """How one shard's step ended: SUCCEEDED (every message confirmed) or CANCELLED."""

    model_config = ConfigDict(frozen=True)

    replay_id: str
    index: int
    state: Literal["SUCCEEDED", "CANCELLED"]
    confirmed: int
    total: int
    bytes: int = 0
    resent: int = 0
    seconds: float = 0.0


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


#: States of a replay as a client sees it: the store's, and PENDING for a replay whose
#: Dagster run was submitted but has not created it yet.
ReplayStateName = Literal["PENDING", "PLANNED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"]


class ReplayStatus(BaseModel):
    """Where a replay stands: what ``GET /api/v1/replays/{id}`` and its event stream show."""

    model_config = ConfigDict(frozen=True)

    replay_id: str
    state: ReplayStateName
    source_execution_id: str | None = None
    child_execution_id: str | None = None
    from_stage: str | None = None
    to_route: str | None = None
    queue: str | None = None
    confirmed: int = 0
    total: int = 0
    bytes_confirmed: int = 0
    bytes_total: int = 0
    rate: float = Field(
        default=0.0, description="Confirmed messages per second, on average since it was created."
    )
    last_confirmed_key: str | None = None
    dagster_run_id: str | None = None
    dagster_run_status: str | None = Field(
        default=None, description="The Dagster run's status, when the API could read it."
    )
    error: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    finished_at: datetime | None = None

    @property
    def finished(self) -> bool:
        return self.state in ("SUCCEEDED", "FAILED", "CANCELLED")

    @classmethod
    def of(cls, record: ReplayRecord, **extra: Any) -> ReplayStatus:
        """The status of a recorded replay (``extra``: fields the caller knows better)."""
        end = record.finished_at or record.updated_at
        seconds = (end - record.created_at).total_seconds()
        values: dict[str, Any] = {
            "replay_id": record.replay_id,
            "state": record.state.value,
            "source_execution_id": record.source_execution_id,
            "child_execution_id": record.child_execution_id,
            "from_stage": record.from_stage,
            "to_route": record.to_route,
            "queue": record.queue,
            "confirmed": record.confirmed,
            "total": record.total,
            "bytes_confirmed": record.bytes_confirmed,
            "bytes_total": record.bytes_total,
            "rate": round(record.confirmed / seconds, 3) if seconds > 0 else 0.0,
            "last_confirmed_key": record.last_confirmed_key,
            "dagster_run_id": record.dagster_run_id,
            "error": record.error,
            "created_at": record.created_at,
            "updated_at": record.updated_at,
            "finished_at": record.finished_at,
        }
        return cls(**{**values, **extra})
