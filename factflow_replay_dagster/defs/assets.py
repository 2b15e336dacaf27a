"""Stored artefacts as Dagster assets: one per (pipeline, route, stage), a partition per execution.

Model (and why):

* an asset per stage of each registered pipeline config, keyed ``factflow/<pipeline>/<route>/
  <stage>`` (route names repeat across pipelines; with the pipeline in the key, keys cannot
  collide), with dependencies in stage order, so the asset graph draws the pipeline;
* one dynamic partitions definition **per pipeline** (``<pipeline>__executions``) rather than
  one for all: an asset then lists only its own pipeline's executions, and 100,000
  executions spread over pipelines stay within Dagster's advice per asset;
* execution ids are validated (no ``|``, ``/``, whitespace) before they become partition keys,
  and the partition key is exactly the execution id: nothing to parse back;
* the assets are external (``AssetSpec``): factflow workers, not Dagster, produce them; the
  ``stored_artefacts_sensor`` reports what they stored as materializations.

An execution whose snapshot names a pipeline, route or stage that no registered config has is
still reported on its key; Dagster lists such keys in the asset catalog as assets without a
definition, with the same partitions and metadata (``registered_config: false``). It stays
replayable: replay reads the execution's own snapshot.
"""

# No `from __future__ import annotations` here: Dagster reads check annotations at runtime.

__all__ = [
    "ASSET_TAG_MAX_LENGTH",
    "CHECK_NAME",
    "asset_event_tags",
    "asset_key_parts",
    "check_evaluation",
    "executions_partitions",
    "load_registered_configs",
    "replay_snippet",
    "source_partition_path",
    "stage_asset_key",
    "stage_asset_specs",
    "stored_artefacts_checks",
]

import functools
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import dagster as dg

from ..pipelines import SAMPLES
from ..settings import Settings
from ..snapshot import ConfigSnapshot
from ..verification import StageVerification, verify_stage
from .resources import ArtefactStoreResource, ExecutionStoreResource

#: The asset check on every stored partition.
CHECK_NAME = "stored_objects_match_lineage"


#: Dagster refuses an asset event whose tag value is longer than this (its strict tag rule;
#: run tags have no such limit). Ids may be up to 128 characters long.
ASSET_TAG_MAX_LENGTH = 63


def asset_event_tags(tags: Mapping[str, str]) -> dict[str, str]:
    """``tags`` for an asset materialization or observation, without the values Dagster would
    refuse (longer than :data:`ASSET_TAG_MAX_LENGTH`): a long id is left out of the tags only;
    the event's partition key (an execution) or metadata (a replay) still names it."""
    return {key: value for key, value in tags.items() if len(value) <= ASSET_TAG_MAX_LENGTH}


def stage_asset_key(pipeline: str, route: str, stage: str) -> dg.AssetKey:
    """``factflow/<pipeline>/<route>/<stage>``."""
    return dg.AssetKey(["factflow", pipeline, route, stage])


def asset_key_parts(key: dg.AssetKey) -> tuple[str, str, str] | None:
    """``(pipeline, route, stage)`` of a stage asset key, else None."""
    path = key.path
    if len(path) == 4 and path[0] == "factflow":
        return path[1], path[2], path[3]
    return None


@functools.cache
def executions_partitions(pipeline: str) -> dg.DynamicPartitionsDefinition:
    """The partitions of a pipeline's stage assets: one per execution id."""
    return dg.DynamicPartitionsDefinition(name=f"{pipeline}__executions")


def source_partition_path(pipeline: str, route: str, stage: str, execution_id: str) -> str:
    """The UI path of one stored partition (relative to the webserver), for provenance links."""
    key = "/".join(stage_asset_key(pipeline, route, stage).path)
    return f"/assets/{key}?partition={execution_id}"


def replay_snippet(execution_id: str, stage: str, to_route: str | None) -> str:
    """Markdown: the launchpad config and CLI command that replay this stored partition."""
    route = to_route or "<route to feed>"
    return (
        "Replay this partition: launch **replay_job** with\n\n"
        f"```yaml\nsource_execution_id: {execution_id}\nfrom_stage: {stage}\n"
        f"to_route: {route}\nreason: <why>\n```\n\nor run\n\n"
        f"`factflow-replay execution replay {execution_id} --from-stage {stage} "
        f"--to-route {route}`"
    )


def load_registered_configs(settings: Settings) -> list[ConfigSnapshot]:
    """The configs whose stages become assets: ``FACTFLOW_PIPELINES`` (files or folders of
    ``*.yaml``), or the bundled samples when it is unset."""
    paths: list[Path] = []
    for path in settings.pipelines or tuple(SAMPLES.values()):
        paths.extend(sorted(path.glob("*.y*ml")) if path.is_dir() else [path])
    return [ConfigSnapshot.load(path) for path in paths]


def _group(pipeline: str) -> str:
    return "factflow_" + re.sub(r"[^A-Za-z0-9_]", "_", pipeline)


def stage_asset_specs(configs: Sequence[ConfigSnapshot]) -> list[dg.AssetSpec]:
    """One external asset per (pipeline, route, stage); deps follow stage order. Several
    versions of one pipeline share assets (their queues are listed per version)."""
    order: list[tuple[str, str, str]] = []
    deps: dict[tuple[str, str, str], set[dg.AssetKey]] = {}
    queues: dict[tuple[str, str, str], dict[str, str]] = {}
    for snapshot in configs:
        config = snapshot.config
        for route, stage in config.iter_stages():
            ident = (config.pipeline, route.name, stage.name)
            if ident not in deps:
                order.append(ident)
                deps[ident] = set()
                queues[ident] = {}
            queues[ident][config.version] = route.stage_queue(stage.name)
            previous = config.previous_stage(route.name, stage.name)
            if previous is not None:
                deps[ident].add(stage_asset_key(config.pipeline, *previous))
    specs = []
    for ident in order:
        pipeline, route_name, stage_name = ident
        ordered_deps: list[dg.AssetKey] = sorted(deps[ident], key=lambda k: k.to_user_string())
        metadata: dict[str, object] = {
            "pipeline": pipeline,
            "route": route_name,
            "stage": stage_name,
            "layout": f"executions/<execution>/{route_name}/{stage_name}/<object>",
            **{f"queue (v{v})": q for v, q in sorted(queues[ident].items())},
        }
        specs.append(
            dg.AssetSpec(
                key=stage_asset_key(pipeline, route_name, stage_name),
                deps=ordered_deps,
                partitions_def=executions_partitions(pipeline),
                group_name=_group(pipeline),
                description=f"Artefacts stage {route_name}/{stage_name} of pipeline {pipeline} "
                "stores; one "
                "partition per execution. Reported by stored_artefacts_sensor.",
                metadata=metadata,
                kinds={"factflow"},
            )
        )
    return specs


def _check_for(spec: dg.AssetSpec) -> dg.AssetChecksDefinition:
    parts = asset_key_parts(spec.key)
    assert parts is not None
    _, route, stage = parts

    def stored_objects_match_lineage(
        context: dg.AssetCheckExecutionContext,
        artefacts: ArtefactStoreResource,
        executions: ExecutionStoreResource,
    ) -> dg.AssetCheckResult:
        with artefacts.open() as store, executions.open() as records:
            result = verify_stage(store, records, context.partition_key, route, stage)
        return dg.AssetCheckResult(
            passed=result.passed,
            description=result.describe(),
            metadata={**_check_counts(result), "location": result.location},
        )

    with warnings.catch_warnings():
        # Partitioned asset checks are a Dagster 1.13 preview we rely on deliberately.
        warnings.filterwarnings(
            "ignore",
            category=dg.PreviewWarning,
            message=r"Specifying a partitions_def on an AssetCheckSpec",
        )
        return dg.asset_check(
            asset=spec.key,
            name=CHECK_NAME,
            partitions_def=spec.partitions_def,
            description="Storage still holds every object lineage recorded for this stage of "
            "this execution (red: objects were lost; a replay would refuse).",
        )(stored_objects_match_lineage)


def _check_counts(result: StageVerification) -> dict[str, int]:
    return {"recorded": result.recorded, "stored": result.stored, "missing": result.missing}


def check_evaluation(asset_key: dg.AssetKey, result: StageVerification) -> dg.AssetCheckEvaluation:
    """The storage check's verdict on one stage partition as an event, for what verifies
    outside the check itself (the discovery sensor, ``verify_stored_job``)."""
    return dg.AssetCheckEvaluation(
        asset_key=asset_key,
        check_name=CHECK_NAME,
        passed=result.passed,
        partition=result.execution_id,
        description=result.describe(),
        metadata=_check_counts(result),
    )


def stored_artefacts_checks(specs: Iterable[dg.AssetSpec]) -> list[dg.AssetChecksDefinition]:
    """The per-partition storage check of every stage asset."""
    return [_check_for(spec) for spec in specs]
