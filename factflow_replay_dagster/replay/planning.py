"""Plan a replay before anything is published: resolve, check the queue, list and verify."""

from __future__ import annotations

__all__ = [
    "CheckedReplay",
    "check_replay",
    "plan_replay",
    "resolve_target",
    "select_artefacts",
    "select_keys",
]

import fnmatch
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from ..errors import (
    IncompleteArtefactsError,
    InvalidStateError,
    MessageTooLargeError,
    NoArtefactsError,
    ReplayError,
)
from ..executions import (
    ExecutionRecord,
    ExecutionStore,
    ReplayRecord,
    StageLineage,
    StageStatus,
)
from ..layout import stage_prefix
from ..queues.base import QueuePublisher
from ..snapshot import ConfigSnapshot, RouteConfig
from ..storage.base import ArtefactStore, ObjectInfo
from ._tally import Tally
from .models import Completeness, ReplayPlan, ReplayRequest, ShardPlan

T = TypeVar("T")


def select_artefacts(
    artefacts: ArtefactStore,
    prefix: str,
    *,
    match: str | None,
    limit: int | None,
    start_after: str | None = None,
    stop_at: str | None = None,
) -> Iterator[ObjectInfo]:
    """Stream the selected objects in key order: ``match`` on the object name, at most
    ``limit``, strictly after ``start_after``, up to and including ``stop_at``."""
    listing = artefacts.list(prefix, start_after=start_after)
    return _selected(
        listing, lambda info: info.key, prefix, match=match, limit=limit, stop_at=stop_at
    )


def select_keys(
    artefacts: ArtefactStore,
    prefix: str,
    *,
    match: str | None,
    limit: int | None,
    start_after: str | None = None,
    stop_at: str | None = None,
) -> Iterator[str]:
    """The keys :func:`select_artefacts` selects, listed without details (what publishing
    needs: sizes come with the bodies)."""
    listing = artefacts.list_keys(prefix, start_after=start_after)
    return _selected(listing, lambda key: key, prefix, match=match, limit=limit, stop_at=stop_at)


def _selected(
    listing: Iterator[T],
    key_of: Callable[[T], str],
    prefix: str,
    *,
    match: str | None,
    limit: int | None,
    stop_at: str | None,
) -> Iterator[T]:
    taken = 0
    start = len(prefix)
    for item in listing:
        key = key_of(item)
        if stop_at is not None and key > stop_at:
            return
        if match is not None and not fnmatch.fnmatchcase(key[start:], match):
            continue
        if limit is not None and taken >= limit:
            return
        taken += 1
        yield item


@dataclass(frozen=True)
class CheckedReplay:
    """What :func:`check_replay` resolved: the parent, its snapshot, the source route, the
    target route and its queue (checked on the broker), the source stage's lineage."""

    parent: ExecutionRecord
    snapshot: ConfigSnapshot
    source_route: str
    target: RouteConfig
    lineage: StageLineage | None
    #: The replay this request continues, when it names one that exists.
    resumes: ReplayRecord | None = None

    @property
    def queue(self) -> str:
        return self.target.queue


def resolve_target(
    executions: ExecutionStore, source_execution_id: str, to_route: str
) -> tuple[ExecutionRecord, ConfigSnapshot, RouteConfig]:
    """The parent execution, its own config snapshot, and the route ``to_route`` names in it
    (whose ``queue`` a replay publishes into): never today's config of the pipeline.

    Raises :class:`~factflow_replay_dagster.errors.UnknownExecutionError`,
    :class:`~factflow_replay_dagster.errors.UnknownRouteError` (naming the routes there are)
    or :class:`~factflow_replay_dagster.errors.SnapshotError`.
    """
    parent = executions.get_execution(source_execution_id)
    snapshot = ConfigSnapshot.parse(parent.snapshot, source=f"snapshot of {parent.id!r}")
    return parent, snapshot, snapshot.resolve_route(parent.id, to_route)


def check_replay(
    request: ReplayRequest, *, executions: ExecutionStore, publisher: QueuePublisher
) -> CheckedReplay:
    """The checks of a replay that list nothing: the parent exists, its own snapshot has the
    stage and the route, the route's queue exists, the stage finished. Cheap enough for an
    HTTP request to run before it submits the run that plans and publishes."""
    parent, snapshot, target = resolve_target(
        executions, request.source_execution_id, request.to_route
    )
    source_route = snapshot.resolve_stage(parent.id, request.from_stage, route=request.source_route)
    publisher.check_queue(target.queue)
    lineage = executions.stage_lineage(parent.id, source_route, request.from_stage)
    if lineage is not None and lineage.status is not StageStatus.SUCCEEDED:
        raise InvalidStateError(
            f"stage {source_route}/{request.from_stage} of execution {parent.id!r} is "
            f"{lineage.status}, so its stored artefacts may be incomplete; let it finish or "
            "recover the execution first"
        )
    return CheckedReplay(parent, snapshot, source_route, target, lineage)


def _tally(
    request: ReplayRequest,
    artefacts: ArtefactStore,
    executions: ExecutionStore,
    parent_id: str,
    source_route: str,
    *,
    manifest: bool,
) -> Tally:
    """What storage holds of the selection, beside what the stage's manifest (if any) lists."""
    prefix = stage_prefix(parent_id, source_route, request.from_stage)
    recorded = (
        executions.manifest_keys(parent_id, source_route, request.from_stage) if manifest else None
    )
    try:  # closed even when listing storage fails: it holds a read transaction open
        expected = None
        if recorded is not None:
            expected = _selected(
                recorded,
                lambda key: key,
                prefix,
                match=request.match,
                limit=request.limit,
                stop_at=None,
            )
        tally = Tally(expected)
        for info in select_artefacts(artefacts, prefix, match=request.match, limit=request.limit):
            tally.add(info)
        tally.finish()
    finally:
        if recorded is not None:
            recorded.close()
    return tally


def plan_replay(
    request: ReplayRequest,
    *,
    artefacts: ArtefactStore,
    executions: ExecutionStore,
    publisher: QueuePublisher,
    resume: ReplayRecord | None = None,
) -> tuple[ReplayPlan, ConfigSnapshot]:
    """Check everything a replay needs and describe it; nothing is created or published.

    Raises, naming the culprit: unknown execution, stage, route (resolved from the parent's
    own snapshot only); a missing queue; an unfinished source stage (:func:`check_replay`);
    no artefacts; an object the stage's manifest lists (for any selection) or, without one,
    fewer objects than its lineage counted (unfiltered only: the plan's ``completeness`` says
    which check ran).
    """
    checked = check_replay(request, executions=executions, publisher=publisher)
    parent, snapshot, source_route = checked.parent, checked.snapshot, checked.source_route
    target, lineage = checked.target, checked.lineage
    queue = target.queue
    prefix = stage_prefix(parent.id, source_route, request.from_stage)

    manifest = lineage is not None and lineage.manifest
    tally = _tally(request, artefacts, executions, parent.id, source_route, manifest=manifest)
    count, size, first, last = tally.count, tally.bytes, tally.first, tally.last
    largest = tally.largest
    if tally.missing:
        raise IncompleteArtefactsError(
            artefacts.location,
            prefix,
            recorded=tally.expected or 0,
            stored=(tally.expected or 0) - tally.missing,
            missing=tally.missing,
            first_missing=tally.first_missing,
        )
    if largest is not None and largest.size > publisher.max_message_bytes:
        raise MessageTooLargeError(
            largest.key, largest.size, publisher.max_message_bytes, publisher.broker
        )
    if count == 0 or first is None or last is None:
        detail = f" matching {request.match!r}" if request.match else ""
        raise NoArtefactsError(artefacts.location, prefix, detail=detail)
    if resume is not None and count != resume.total:
        raise ReplayError(
            f"replay {resume.replay_id!r} planned {resume.total} artefacts under {prefix!r}; "
            f"storage now holds {count} that match: they changed, so it cannot resume exactly"
        )
    unfiltered = request.match is None and request.limit is None
    completeness: Completeness
    if manifest:
        completeness = "manifest"
    elif lineage is not None and unfiltered:
        completeness = "count"
        if count < lineage.artefact_count:
            raise IncompleteArtefactsError(
                artefacts.location, prefix, recorded=lineage.artefact_count, stored=count
            )
    else:
        completeness = "unknown"

    if resume is None:
        shards = _cut(
            artefacts,
            prefix,
            request,
            count=count,
            size=size,
            first=first,
            last=last,
        )
    else:
        shards = _resumed(executions, resume)

    plan = ReplayPlan(
        source_execution_id=parent.id,
        pipeline=parent.pipeline,
        pipeline_version=parent.pipeline_version,
        source_route=source_route,
        from_stage=request.from_stage,
        to_route=target.name,
        target_stage=target.stages[0].name,
        queue=queue,
        location=artefacts.location,
        prefix=prefix,
        count=count if resume is None else resume.total,
        bytes=size if resume is None else resume.bytes_total,
        first_key=first if resume is None else (resume.first_key or first),
        last_key=last if resume is None else (resume.last_key or last),
        match=request.match,
        limit=request.limit,
        resume_after=None if resume is None else resume.last_confirmed_key,
        already_confirmed=0 if resume is None else resume.confirmed,
        shards=shards,
        completeness=completeness,
    )
    return plan, snapshot


def _cut(
    artefacts: ArtefactStore,
    prefix: str,
    request: ReplayRequest,
    *,
    count: int,
    size: int,
    first: str,
    last: str,
) -> list[ShardPlan]:
    """The selection cut into ``request.shards`` contiguous key ranges of near-equal counts
    (one more listing, keeping only each range's bounds: memory does not grow)."""
    wanted = min(request.shards, count)
    if wanted == 1:
        return [
            ShardPlan(
                index=0, start_after=None, stop_at=last, first_key=first, count=count, bytes=size
            )
        ]
    sizes = [count // wanted + (1 if index < count % wanted else 0) for index in range(wanted)]
    shards: list[ShardPlan] = []
    start_after: str | None = None
    taken = size_taken = 0
    shard_first: str | None = None
    for info in select_artefacts(artefacts, prefix, match=request.match, limit=request.limit):
        shard_first = shard_first or info.key
        taken += 1
        size_taken += info.size
        if taken == sizes[len(shards)]:
            shards.append(
                ShardPlan(
                    index=len(shards),
                    start_after=start_after,
                    stop_at=info.key,
                    first_key=shard_first,
                    count=taken,
                    bytes=size_taken,
                )
            )
            start_after, shard_first, taken, size_taken = info.key, None, 0, 0
            if len(shards) == wanted:
                break
    if len(shards) != wanted:
        raise ReplayError(
            f"objects under {prefix!r} changed while the replay was planned: listed {count} "
            "then fewer; plan it again"
        )
    return shards


def _resumed(executions: ExecutionStore, record: ReplayRecord) -> list[ShardPlan]:
    """A resumed replay's shards as it cut them, each from where it stopped."""
    return [
        ShardPlan(
            index=shard.shard,
            start_after=shard.start_after,
            stop_at=shard.stop_at,
            first_key=shard.first_key,
            count=shard.total,
            bytes=shard.bytes_total,
            resume_after=shard.last_confirmed_key,
            already_confirmed=shard.confirmed,
            done=shard.done,
        )
        for shard in executions.replay_shards(record.replay_id)
    ]
