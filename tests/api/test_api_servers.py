"""The HTTP API on RabbitMQ + SeaweedFS (S3) + PostgreSQL: a replay over HTTP launched
through the Dagster instance and run by the reference runtime, then the same API submitting
to a real ``dagster dev`` over GraphQL (FACTFLOW_DAGSTER_URL), cancel included."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from support.api import (
    AUTH,
    TOKENS,
    ApiServer,
    dagster_home_launching_at_once,
    read_events,
    wait_for_run,
)
from support.environments import server_env
from support.servers.dagster_dev import DagsterDev
from support.worlds import World, news_world

from factflow_replay_dagster.executions import ExecutionStatus
from factflow_replay_dagster.runtime import run_until_finished

pytestmark = [pytest.mark.slow, pytest.mark.rabbitmq, pytest.mark.s3, pytest.mark.postgres]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    with pytest.MonkeyPatch.context() as monkeypatch:
        env = server_env(request, tmp_path_factory.mktemp("servers"), monkeypatch)
        yield from news_world(env)


def test_replay_over_http_through_the_instance_on_servers(world: World, tmp_path: Path) -> None:
    home = dagster_home_launching_at_once(tmp_path / "dagster-home")
    env = {**world.env, "DAGSTER_HOME": str(home), "FACTFLOW_API_TOKENS": ",".join(TOKENS)}
    server = ApiServer(env, log_path=tmp_path / "api.log").start()
    try:
        with server.client() as client:
            ready = client.get("/readyz")
            assert ready.status_code == 200, ready.text
            response = client.post(
                f"/api/v1/executions/{world.parent.id}/replay",
                json={"from_stage": "parse", "to_route": "enrich", "reason": "servers"},
            )
            assert response.status_code == 202, response.text
            accepted = response.json()
            final = read_events(client, accepted["events_url"])[-1]
            assert final["event"] == "end"
            assert (final["data"]["state"], final["data"]["confirmed"]) == ("SUCCEEDED", 240)
            run = wait_for_run(home, accepted["dagster_run_id"])
            assert run.status == dg.DagsterRunStatus.SUCCESS
            child = run_until_finished(
                accepted["child_execution_id"],
                world.news.config.queues(),
                **world.components.runtime(),
                timeout=300,
            )
            assert child.status is ExecutionStatus.SUCCEEDED
            shown = client.get(accepted["execution_url"]).json()
            assert [row["artefact_count"] for row in shown["lineage"]] == [240, 240]
            assert shown["execution"]["replay_source"]["reason"] == "servers"
            assert world.components.executions.counter(world.parent.id, "fetch") == 240
    finally:
        server.stop()
    for secret in (world.env["AWS_SECRET_ACCESS_KEY"], *TOKENS):
        assert secret not in server.log()


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


def run_tags(dev: DagsterDev, run_id: str) -> dict[str, str]:
    tags = dev.graphql(
        "query($id: ID!) { runOrError(runId: $id) { ... on Run { tags { key value } } } }",
        {"id": run_id},
    )["runOrError"]["tags"]
    return {t["key"]: t["value"] for t in tags}


def test_replay_and_cancel_over_http_through_a_webserver(
    world: World, dagster_dev: DagsterDev, tmp_path: Path
) -> None:
    env = {
        **world.env,
        "FACTFLOW_DAGSTER_URL": dagster_dev.url,
        "FACTFLOW_API_TOKENS": TOKENS[1],
    }
    server = ApiServer(env, log_path=tmp_path / "api.log").start()
    try:
        with server.client(AUTH) as client:
            assert client.get("/readyz").json()["checks"]["dagster"] == "ok"
            done = client.post(
                f"/api/v1/executions/{world.parent.id}/replay",
                json={"from_stage": "parse", "to_route": "enrich", "limit": 10},
            ).json()
            assert done["replay_id"] == f"replay-{done['dagster_run_id']}"
            final = read_events(client, done["events_url"])[-1]["data"]
            assert (final["state"], final["confirmed"]) == ("SUCCEEDED", 10)
            assert run_tags(dagster_dev, done["dagster_run_id"])["factflow/requested_by"] == "api"

            slow = client.post(
                f"/api/v1/executions/{world.parent.id}/replay",
                json={"from_stage": "parse", "to_route": "enrich", "rate": 20.0},
            ).json()
            status = client.get(slow["status_url"]).json()
            while status["confirmed"] < 10:
                assert status["state"] in ("PENDING", "PLANNED", "RUNNING"), status
                status = client.get(slow["status_url"]).json()
            cancelled = client.post(f"{slow['status_url']}/cancel")
            assert cancelled.status_code == 202, cancelled.text
            stopped = read_events(client, slow["events_url"])[-1]["data"]
            assert stopped["state"] == "CANCELLED"
            assert 10 <= stopped["confirmed"] < 240
    finally:
        server.stop()
