"""Stored artefacts as Dagster assets: one asset per (pipeline, route, stage), one partition
per execution."""

from __future__ import annotations

__all__ = ["EXECUTIONS", "EXECUTIONS_PARTITIONS", "source_partition_path", "stage_asset_key"]

import dagster as dg

#: Every execution is a partition of the stage assets of its pipeline. Ids are validated
#: (no ``|``, ``/``, whitespace) before they become keys, so keys stay unambiguous.
EXECUTIONS_PARTITIONS = "factflow_executions"
EXECUTIONS = dg.DynamicPartitionsDefinition(name=EXECUTIONS_PARTITIONS)


def stage_asset_key(pipeline: str, route: str, stage: str) -> dg.AssetKey:
    """``factflow/<pipeline>/<route>/<stage>``: route names may repeat across pipelines."""
    return dg.AssetKey(["factflow", pipeline, route, stage])


def source_partition_path(pipeline: str, route: str, stage: str, execution_id: str) -> str:
    """The UI path of one stored partition (relative to the webserver), for provenance links."""
    key = "/".join(stage_asset_key(pipeline, route, stage).path)
    return f"/assets/{key}?partition={execution_id}"
