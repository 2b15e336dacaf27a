"""A real ``dagster dev`` (webserver + daemon) on RabbitMQ + SeaweedFS + PostgreSQL: replay_job
launched over GraphQL with the launchpad's config, the CLI's --dagster-url, and the daemon's
sensor recovering a failed execution."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from dagster_graphql import DagsterGraphQLClient
from support.environments import server_env
from support.servers.dagster_dev import DagsterDev
from support.servers.workers import WorkerProcess
from support.worlds import World, news_world, small_news

from factflow_replay_dagster.executions import ExecutionStatus, StageStatus
from factflow_replay_dagster.runtime import start_execution
from factflow_replay_dagster.snapshot import ConfigSnapshot

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    with pytest.MonkeyPatch.context() as monkeypatch:
        env = server_env(request, tmp_path_factory.mktemp("servers"), monkeypatch)
        env["FACTFLOW_RECOVERY_SENSOR_INTERVAL"] = "2"
        monkeypatch.setenv("FACTFLOW_RECOVERY_SENSOR_INTERVAL", "2")
        yield from news_world(env)


@pytest.fixture(scope="module")
def dagster_dev(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DagsterDev]:
    server = DagsterDev(
        ROOT / "workspace.yaml", base_dir=tmp_path_factory.mktemp("dev"), env=world.env
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


def client(dev: DagsterDev) -> DagsterGraphQLClient:
    return DagsterGraphQLClient("127.0.0.1", port_number=dev.port)


def wait_for_run(dev: DagsterDev, run_id: str, timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client(dev).get_run_status(run_id).value
        if status in ("SUCCESS", "FAILURE", "CANCELED"):
            return status
        time.sleep(0.5)
    pytest.fail(f"run {run_id} did not finish:\n{dev.log_tail()}")


# The launchpad config of replay_job, as a person would paste it (YAML there, a dict here).
LAUNCHPAD = """
source_execution_id: {parent}
from_stage: parse
to_route: enrich
reason: launched over GraphQL
limit: 25
"""


def test_replay_job_over_graphql_with_the_launchpad_config(
    world: World, dagster_dev: DagsterDev
) -> None:
    import yaml

    run_config = yaml.safe_load(LAUNCHPAD.format(parent=world.parent.id))
    run_id = client(dagster_dev).submit_job_execution(
        "replay_job", repository_location_name="factflow", run_config=run_config
    )
    assert wait_for_run(dagster_dev, run_id) == "SUCCESS", dagster_dev.log_tail()
    [replay] = world.components.executions.list_replays(dagster_run_id=run_id)
    assert (replay.state.value, replay.confirmed) == ("SUCCEEDED", 25)
    child = world.components.executions.get_execution(replay.child_execution_id)
    assert child.replay_source is not None
    assert child.replay_source.reason == "launched over GraphQL"
    tags = dagster_dev.graphql(
        "query($id: ID!) { runOrError(runId: $id) { ... on Run { tags { key value } } } }",
        {"id": run_id},
    )["runOrError"]["tags"]
    tag_map = {t["key"]: t["value"] for t in tags}
    assert tag_map["factflow/child_execution"] == child.id
    assert tag_map["factflow/source_execution"] == world.parent.id


def test_cli_replay_on_the_webserver(world: World, dagster_dev: DagsterDev) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "factflow_replay_dagster.cli",
            "execution",
            "replay",
            world.parent.id,
            "--from-stage",
            "parse",
            "--to-route",
            "enrich",
            "--limit",
            "5",
            "--dagster-url",
            dagster_dev.url,
            "--json",
        ],
        capture_output=True,
        text=True,
        env={**world.env, "PATH": str(Path(sys.executable).parent)},
        check=False,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["run_status"] == "SUCCESS"
    assert summary["replay"]["confirmed"] == 5


@pytest.mark.timeout(600)
def test_the_daemon_sensor_recovers_a_failed_execution(
    world: World, dagster_dev: DagsterDev, tmp_path: Path
) -> None:
    # 40 documents: what is tested is the daemon recovering unaided, not the volume.
    news = tmp_path / "news-40.yaml"
    news.write_text(small_news(40).text)
    components = world.components
    record = start_execution(
        ConfigSnapshot.load(news), executions=components.executions, publisher=components.publisher
    )
    faulty = WorkerProcess(
        [news],
        env={**world.env, "FACTFLOW_FAIL_STAGES": "annotate"},
        log_path=tmp_path / "faulty.log",
    ).start()
    healthy = None
    deadline = time.monotonic() + 420

    def logs() -> str:
        workers = "\n".join(w.log_tail() for w in (faulty, healthy) if w is not None)
        return f"{dagster_dev.log_tail()}\n{workers}"

    try:
        while True:
            parse = components.executions.stage_lineage(record.id, "ingest", "parse")
            failed = components.executions.get_execution(record.id).status
            if failed is ExecutionStatus.FAILED and parse and parse.status is StageStatus.SUCCEEDED:
                break
            assert time.monotonic() < deadline, f"never failed as planned:\n{logs()}"
            time.sleep(0.2)
        faulty.stop()  # the fault is cleared: a healthy worker takes over
        healthy = WorkerProcess([news], env=world.env, log_path=tmp_path / "healthy.log").start()
        # Nobody calls recover: the daemon's failed_execution_sensor must do it.
        while (
            components.executions.get_execution(record.id).status is not ExecutionStatus.SUCCEEDED
        ):
            assert time.monotonic() < deadline, f"not recovered:\n{logs()}"
            time.sleep(0.5)
    finally:
        faulty.stop()
        if healthy is not None:
            healthy.stop()
    [recovery] = components.executions.recoveries(record.id)
    assert (recovery.restart_route, recovery.restart_stage) == ("enrich", "annotate")
    assert recovery.requested_by == "failed_execution_sensor"
    assert components.executions.counter(record.id, "fetch") == 40  # fetched once, not again
