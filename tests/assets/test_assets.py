"""Stored artefacts as partitioned assets, on Dagster instances backed by SQLite and PostgreSQL:
the graph, partitions with metadata, replay provenance, checks, unregistered configs."""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from support.worlds import World, news_world

from factflow_replay_dagster.defs.assets import CHECK_NAME, stage_asset_key
from factflow_replay_dagster.defs.definitions import build_definitions
from factflow_replay_dagster.executions import ExecutionStatus
from factflow_replay_dagster.pipelines import sample_config
from factflow_replay_dagster.runtime import run_pipeline, run_until_finished
from factflow_replay_dagster.settings import Settings
from factflow_replay_dagster.snapshot import ConfigSnapshot
from factflow_replay_dagster.testing.dagster import tick

KEYS = {
    stage: stage_asset_key("news", route, stage)
    for route, stage in [
        ("ingest", "fetch"),
        ("ingest", "parse"),
        ("enrich", "annotate"),
        ("enrich", "index"),
    ]
}
_databases = itertools.count()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    yield from news_world({"FACTFLOW_HOME": str(tmp_path_factory.mktemp("assets-home"))})


@pytest.fixture(params=["sqlite", "postgres"])
def instance(request: pytest.FixtureRequest) -> Iterator[dg.DagsterInstance]:
    overrides = None
    if request.param == "postgres":
        server = request.getfixturevalue("postgres_server")
        url = server.create_database(f"dagster_{next(_databases)}")
        overrides = {
            "storage": {
                "postgres": {"postgres_url": url.replace("postgresql+psycopg://", "postgresql://")}
            }
        }
    with dg.instance_for_test(overrides=overrides) as test_instance:
        yield test_instance


@pytest.fixture(scope="module")
def defs(world: World) -> dg.Definitions:
    return build_definitions(Settings.from_env(world.env))


@pytest.fixture(scope="module")
def scene(world: World, defs: dg.Definitions) -> dict[str, str]:
    """news run twice (the world's run and one more) and a replay of the first into enrich."""
    second = run_pipeline(world.news, **world.components.runtime(), timeout=180)
    with dg.instance_for_test() as scratch:
        result = defs.resolve_job_def("replay_job").execute_in_process(
            run_config=world.good_request(reason="assets"), instance=scratch
        )
    child = result.output_for_node("finish_replay").child_execution_id
    done = run_until_finished(
        child, world.news.config.queues(), **world.components.runtime(), timeout=180
    )
    assert done.status is ExecutionStatus.SUCCEEDED
    return {"first": world.parent.id, "second": second.id, "child": child}


def latest(instance: dg.DagsterInstance, key: dg.AssetKey, partition: str) -> dict[str, object]:
    [record] = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, asset_partitions=[partition]), limit=1
    ).records
    event = record.asset_materialization
    assert event is not None
    return {name: value.value for name, value in event.metadata.items()}


def test_the_asset_graph_draws_the_pipeline(defs: dg.Definitions) -> None:
    graph = defs.resolve_asset_graph()
    keys = {k for k in graph.get_all_asset_keys() if k.path[0] == "factflow"}
    assert keys == set(KEYS.values())
    edges = {(p.path[-1], k.path[-1]) for k in keys for p in graph.get(k).parent_keys}
    assert edges == {("fetch", "parse"), ("parse", "annotate"), ("annotate", "index")}
    partitions = {graph.get(k).partitions_def for k in keys}
    assert [p.name for p in partitions] == ["news__executions"]  # type: ignore[union-attr]
    specs = {spec.key: spec for spec in defs.assets or []}  # type: ignore[union-attr]
    assert specs[KEYS["annotate"]].metadata["queue (v1)"] == "news.enrich"
    assert specs[KEYS["annotate"]].metadata["queue (v2)"] == "news.v2.enrich"


def test_executions_become_partitions_with_their_metadata(
    world: World, defs: dg.Definitions, scene: dict[str, str], instance: dg.DagsterInstance
) -> None:
    data = tick(defs, "stored_artefacts_sensor", instance)
    partitions = set(instance.get_dynamic_partitions("news__executions"))
    assert set(scene.values()) <= partitions
    for execution in (scene["first"], scene["second"]):
        for stage, key in KEYS.items():
            metadata = latest(instance, key, execution)
            assert metadata["artefacts"] == 240
            assert metadata["lineage_status"] == "SUCCEEDED"
            assert str(metadata["first_key"]).endswith(f"/{stage}/news-0001.json")
            assert str(metadata["last_key"]).endswith(f"/{stage}/news-0240.json")
            assert f"executions/{execution}/" in str(metadata["location"])
            assert metadata["registered_config"] is True
    assert "replay_job" in str(latest(instance, KEYS["parse"], scene["first"])["replay"])
    checks = [e for e in data.asset_events if isinstance(e, dg.AssetCheckEvaluation)]
    assert checks
    assert all(c.passed for c in checks)
    quiet = tick(defs, "stored_artefacts_sensor", instance, cursor=data.cursor)
    assert quiet.skip_message.startswith("nothing stored or finished since change")


def test_the_replayed_partition_carries_provenance_to_its_source(
    world: World, defs: dg.Definitions, scene: dict[str, str], instance: dg.DagsterInstance
) -> None:
    tick(defs, "stored_artefacts_sensor", instance)
    annotate = latest(instance, KEYS["annotate"], scene["child"])
    assert annotate["replayed_from"] == f"{scene['first']} ingest/parse"
    assert annotate["source_partition"] == (
        f"/assets/factflow/news/ingest/parse?partition={scene['first']}"
    )
    assert annotate["origin"] == "replay"
    with pytest.raises(ValueError):  # the child stored nothing upstream of the replay
        latest(instance, KEYS["parse"], scene["child"])


def test_a_partition_that_lost_objects_shows_red(
    world: World, defs: dg.Definitions, scene: dict[str, str], instance: dg.DagsterInstance
) -> None:
    folder = Path(world.components.artefacts.location.removeprefix("folder ")) / (
        f"executions/{scene['second']}/ingest/parse"
    )
    backup = folder.with_name("parse.bak")
    shutil.copytree(folder, backup)
    try:
        for path in sorted(folder.iterdir())[:3]:
            path.unlink()
        result = defs.resolve_job_def("verify_stored_job").execute_in_process(
            run_config={"execution_ids": [scene["second"]]}, instance=instance
        )
        assert result.output_for_node("verify_stored") == 1
        check = dg.AssetCheckKey(KEYS["parse"], CHECK_NAME)
        [record] = instance.event_log_storage.get_asset_check_execution_history(check, limit=1)
        evaluation = record.event.asset_check_evaluation  # type: ignore[union-attr]
        assert (evaluation.passed, evaluation.partition) == (False, scene["second"])
        assert evaluation.metadata["missing"].value == 3
    finally:
        shutil.rmtree(folder)
        backup.rename(folder)


def test_an_execution_of_an_unregistered_config_is_still_shown(
    world: World, tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    other = tmp_path / "other.yaml"
    other.write_text(
        sample_config("news")
        .read_text()
        .replace("pipeline: news", "pipeline: other")
        .replace("news.", "other.")
    )
    record = run_pipeline(ConfigSnapshot.load(other), **world.components.runtime(), timeout=180)
    defs = build_definitions(Settings.from_env(world.env))  # registers only the samples
    assert (
        stage_asset_key("other", "ingest", "parse")
        not in defs.resolve_asset_graph().get_all_asset_keys()
    )
    tick(defs, "stored_artefacts_sensor", instance)
    assert record.id in instance.get_dynamic_partitions("other__executions")
    metadata = latest(instance, stage_asset_key("other", "ingest", "parse"), record.id)
    assert (metadata["artefacts"], metadata["registered_config"]) == (240, False)
