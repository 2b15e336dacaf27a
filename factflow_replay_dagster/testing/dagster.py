"""Evaluate sensors in tests exactly as the Dagster daemon would, and apply what they return."""

from __future__ import annotations

__all__ = ["apply_tick", "tick"]

from collections.abc import Mapping
from typing import Any

import dagster as dg


def apply_tick(instance: dg.DagsterInstance, data: Any) -> None:
    """Record a tick's asset events, then its dynamic-partition requests (the daemon's order)."""
    for event in data.asset_events:
        instance.report_runless_asset_event(event)
    for request in data.dynamic_partitions_requests or ():
        if isinstance(request, dg.AddDynamicPartitionsRequest):
            instance.add_dynamic_partitions(request.partitions_def_name, request.partition_keys)
        else:
            for key in request.partition_keys:
                instance.delete_dynamic_partition(request.partitions_def_name, key)


def tick(
    defs: dg.Definitions,
    sensor_name: str,
    instance: dg.DagsterInstance,
    *,
    cursor: str | None = None,
    resources: Mapping[str, Any] | None = None,
) -> Any:
    """Evaluate ``sensor_name`` once with the definitions' resources and apply the result."""
    sensor = defs.resolve_sensor_def(sensor_name)
    with dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources=dict(resources if resources is not None else defs.resources or {}),
        definitions=defs,
    ) as context:
        data = sensor.evaluate_tick(context)
    apply_tick(instance, data)
    return data
