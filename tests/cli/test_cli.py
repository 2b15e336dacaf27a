"""The factflow-replay CLI (click's CliRunner, in-process Dagster runs on embedded defaults)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from support.replay_cases import bad_inputs
from support.worlds import World, news_world

from factflow_replay_dagster.cli import cli
from factflow_replay_dagster.cli._runs import cli_instance
from factflow_replay_dagster.errors import EXIT_BROKER
from factflow_replay_dagster.layout import stage_prefix
from factflow_replay_dagster.pipelines import sample_config
from factflow_replay_dagster.queues.embedded import EmbeddedQueue
from factflow_replay_dagster.settings import Settings


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    yield from news_world({"FACTFLOW_HOME": str(tmp_path_factory.mktemp("cli-home"))})


@pytest.fixture
def run(world: World, monkeypatch: pytest.MonkeyPatch):
    for name, value in world.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    runner = CliRunner()

    def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
        return runner.invoke(cli, list(args), env=env, catch_exceptions=False)

    return invoke


@pytest.fixture
def queue(world: World) -> EmbeddedQueue:
    return world.emptied_queue("news.enrich")


def replay_args(request: dict[str, object]) -> list[str]:
    args = ["execution", "replay", str(request.pop("source_execution_id"))]
    for name, value in request.items():
        args += [f"--{name.replace('_', '-')}", str(value)]
    return args


@pytest.mark.parametrize("case", bad_inputs("PARENT"), ids=lambda c: c.id)
def test_bad_input_exits_with_its_code_and_names_the_problem(world, run, queue, case) -> None:
    before = len(world.components.executions.list_replays())
    result = run(*replay_args(world.good_request(**case.request)))
    assert result.exit_code == case.exit_code, result.output
    assert case.names in result.stderr
    # The command line's own message, not Dagster's failure events with their stacks.
    assert not {"Traceback", "Stack Trace", "STEP_FAILURE", "ERROR"} & set(result.stderr.split())
    assert queue.depth("news.enrich") == 0
    assert len(world.components.executions.list_replays()) == before


def test_replay_json_summary(world, run, queue) -> None:
    result = run(*replay_args(world.good_request(limit=7, reason="cli")), "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["run_status"], summary["exit_code"]) == ("SUCCESS", 0)
    assert (summary["replay"]["state"], summary["replay"]["confirmed"]) == ("SUCCEEDED", 7)
    assert summary["plan"]["queue"] == "news.enrich"
    child = world.components.executions.get_execution(summary["child_execution_id"])
    assert child.replay_source is not None
    assert child.replay_source.reason == "cli"
    assert queue.depth("news.enrich") == 8
    # Tagged from submission on, with what a run queue limits (see replay_launch_tags).
    with cli_instance(Settings.from_env(world.env)) as instance:
        run_record = instance.get_run_by_id(summary["run_id"])
    assert run_record is not None
    assert run_record.tags["factflow/queue"] == "news.enrich"
    assert run_record.tags["factflow/source_execution"] == world.parent.id
    assert run_record.tags["factflow/requested_by"] == "cli"


def test_dry_run_prints_the_plan_and_publishes_nothing(world, run, queue) -> None:
    result = run(*replay_args(world.good_request()), "--dry-run")
    assert result.exit_code == 0, result.output
    assert "would replay 240 artefacts" in result.stdout
    assert "queue news.enrich" in result.stdout
    assert queue.depth("news.enrich") == 0


def test_a_broker_failure_has_its_own_exit_code(world, run) -> None:
    result = run(
        *replay_args(world.good_request()),
        env={
            "FACTFLOW_BROKER_URL": "amqp://guest:s3cret-pw@127.0.0.1:1/%2F",
            "FACTFLOW_BROKER_MAX_RETRIES": "0",
        },
    )
    assert result.exit_code == EXIT_BROKER, result.output
    assert "127.0.0.1:1" in result.stderr
    assert "s3cret-pw" not in result.output + result.stderr


def test_show_and_list(world, run) -> None:
    shown = json.loads(run("execution", "show", world.parent.id, "--json").stdout)
    assert shown["execution"]["status"] == "SUCCEEDED"
    assert [r["route"] for r in shown["routes"]] == ["ingest", "enrich"]
    assert [row["artefact_count"] for row in shown["lineage"]] == [240] * 4
    text = run("execution", "show", world.parent.id).stdout
    assert "enrich: annotate [news.enrich], index [news.enrich.index]" in text
    listed = json.loads(run("execution", "list", "--json").stdout)
    assert world.parent.id in [e["id"] for e in listed]
    unknown = run("execution", "show", "no-such-execution")
    assert unknown.exit_code == 2
    assert "unknown execution 'no-such-execution'" in unknown.stderr


def test_register_an_execution_stored_elsewhere_and_replay_it(world, run, queue) -> None:
    # Another deployment stored parse artefacts for an execution we never recorded.
    artefacts = world.components.artefacts
    source = stage_prefix(world.parent.id, "ingest", "parse")
    for info in list(artefacts.list(source))[:30]:
        target = stage_prefix("elsewhere-1", "ingest", "parse") + info.key[len(source) :]
        artefacts.write(target, artefacts.read(info.key))
    result = run(
        "execution",
        "register",
        "--snapshot",
        str(sample_config("news")),
        "--id",
        "elsewhere-1",
        "--json",
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["stored"] == {"ingest/parse": 30}
    replayed = run(
        *replay_args(
            {"source_execution_id": "elsewhere-1", "from_stage": "parse", "to_route": "enrich"}
        ),
        "--json",
    )
    assert replayed.exit_code == 0, replayed.output
    assert json.loads(replayed.stdout)["replay"]["confirmed"] == 30


def test_rerun_and_recover_commands(world, run, queue) -> None:
    rerun = run(
        "execution",
        "rerun",
        world.parent.id,
        "--stage",
        "index",
        "--only-this-stage",
        "--reason",
        "reindex",
        "--json",
    )
    assert rerun.exit_code == 0, rerun.output
    result = json.loads(rerun.stdout)["result"]
    assert (result["stage"], result["queue"], result["stages"]) == (
        "index",
        "news.enrich.index",
        ["enrich/index"],
    )
    refused = run("execution", "recover", world.parent.id)
    assert refused.exit_code == 2
    assert "not FAILED" in refused.stderr


def test_help_lists_every_command(run) -> None:
    text = run("--help").stdout + run("execution", "--help").stdout
    for command in (
        "pipeline",
        "worker",
        "demo",
        "ui",
        "replay",
        "rerun",
        "recover",
        "show",
        "list",
        "register",
    ):
        assert command in text


def test_settings_errors_are_clear(run, tmp_path: Path) -> None:
    result = run("execution", "list", env={"FACTFLOW_STORAGE_URL": "ftp://x/y"})
    assert result.exit_code == 2
    assert "ftp://x/y" in result.stderr
