"""Turn the execution store's change log into asset events: partitions, materializations, checks.

Incremental by construction: one tick reads the change-log entries after its cursor (at most
``batch``), one query for the executions they name, and nothing else from the store; the cost
follows what changed, not the history. With ``verify_with`` each finished stage is also
counted in storage (one listing of that stage's prefix) and reported as an asset check.
"""

# No `from __future__ import annotations` here: this module sits with the sensors Dagster reads.

__all__ = ["BATCH", "Discovery", "discover"]

from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from ..executions import ExecutionEvent, ExecutionRecord, ExecutionStore
from ..layout import stage_prefix
from ..snapshot import ConfigSnapshot
from ..storage.base import ArtefactStore
from ..verification import verify_stage
from .assets import (
    asset_event_tags,
    check_evaluation,
    executions_partitions,
    replay_snippet,
    source_partition_path,
    stage_asset_key,
)

BATCH = 1000
AssetEvent = dg.AssetMaterialization | dg.AssetObservation | dg.AssetCheckEvaluation


@dataclass
class Discovery:
    """What one tick found: partitions to add (by partitions name), asset events, the cursor."""

    partitions: dict[str, list[str]] = field(default_factory=dict)
    events: list[AssetEvent] = field(default_factory=list)
    cursor: str = "0"
    read: int = 0

    def add_partition(self, pipeline: str, execution_id: str) -> None:
        name = executions_partitions(pipeline).name
        assert name is not None
        keys = self.partitions.setdefault(name, [])
        if execution_id not in keys:
            keys.append(execution_id)


class _Snapshots:
    """Parsed snapshots, shared by executions recorded with the same config text."""

    def __init__(self) -> None:
        self._parsed: dict[str, ConfigSnapshot] = {}

    def of(self, execution: ExecutionRecord) -> ConfigSnapshot:
        parsed = self._parsed.get(execution.snapshot)
        if parsed is None:
            parsed = ConfigSnapshot.parse(execution.snapshot, source=f"snapshot of {execution.id}")
            self._parsed[execution.snapshot] = parsed
        return parsed


def _provenance(execution: ExecutionRecord, route: str) -> dict[str, Any]:
    source = execution.replay_source
    if source is None:
        return {}
    metadata: dict[str, Any] = {
        "replayed_from": f"{source.parent_execution_id} {source.source_route}/{source.from_stage}",
        "replay_id": source.replay_id,
    }
    if route == source.to_route:  # the route the replay fed: link the stored source partition
        metadata["source_partition"] = dg.MetadataValue.url(
            source_partition_path(
                execution.pipeline,
                source.source_route,
                source.from_stage,
                source.parent_execution_id,
            )
        )
    return metadata


def _next_route(snapshot: ConfigSnapshot, route: str, stage: str) -> str | None:
    following = snapshot.config.next_stage(route, stage)
    return following[0] if following is not None and following[0] != route else None


def _stage_event(
    event: ExecutionEvent,
    execution: ExecutionRecord,
    snapshots: _Snapshots,
    *,
    registered: set[dg.AssetKey],
    location: str,
) -> AssetEvent | None:
    assert event.route is not None
    assert event.stage is not None
    key = stage_asset_key(execution.pipeline, event.route, event.stage)
    data = event.data or {}
    common: dict[str, Any] = {
        "lineage_status": event.status,
        "attempt": data.get("attempt"),
        "origin": execution.origin,
        "pipeline_version": execution.pipeline_version,
        "registered_config": key in registered,
    }
    if event.status == "FAILED":
        return dg.AssetObservation(
            asset_key=key,
            partition=execution.id,
            description=f"stage failed: {data.get('error')}",
            metadata={**common, "error": str(data.get("error"))},
        )
    if event.status != "SUCCEEDED":
        return None
    prefix = stage_prefix(execution.id, event.route, event.stage)
    snapshot = snapshots.of(execution)
    metadata = {
        **common,
        "artefacts": data.get("artefacts", 0),
        "bytes": data.get("bytes", 0),
        "first_key": data.get("first_key") or "",
        "last_key": data.get("last_key") or "",
        "location": f"{location}/{prefix}",
        **_provenance(execution, event.route),
        "replay": dg.MetadataValue.md(
            replay_snippet(
                execution.id, event.stage, _next_route(snapshot, event.route, event.stage)
            )
        ),
    }
    return dg.AssetMaterialization(
        asset_key=key,
        partition=execution.id,
        metadata=metadata,
        description=f"{metadata['artefacts']} artefacts stored by {event.route}/{event.stage}",
        tags=asset_event_tags({"factflow/execution": execution.id}),
    )


def discover(
    store: ExecutionStore,
    cursor: str | None,
    *,
    registered: set[dg.AssetKey],
    location: str,
    verify_with: ArtefactStore | None = None,
    batch: int = BATCH,
) -> Discovery:
    """Asset events for the change-log entries after ``cursor`` (a position; None: from 0)."""
    position = int(cursor) if cursor else 0
    entries = store.events_since(position, kinds=["created", "stage"], limit=batch)
    found = Discovery(cursor=str(entries[-1].seq if entries else position), read=len(entries))
    executions = store.get_executions(e.execution_id for e in entries)
    snapshots = _Snapshots()
    for entry in entries:
        execution = executions.get(entry.execution_id)
        if execution is None:
            continue
        found.add_partition(execution.pipeline, execution.id)
        if entry.kind != "stage":
            continue
        asset_event = _stage_event(
            entry, execution, snapshots, registered=registered, location=location
        )
        if asset_event is None:
            continue
        found.events.append(asset_event)
        checkable = asset_event.asset_key in registered  # undefined assets have no check
        if (
            verify_with is not None
            and checkable
            and isinstance(asset_event, dg.AssetMaterialization)
        ):
            assert entry.route is not None
            assert entry.stage is not None
            result = verify_stage(verify_with, store, execution.id, entry.route, entry.stage)
            found.events.append(check_evaluation(asset_event.asset_key, result))
    return found
