"""The HTTP API as a real server process, on embedded defaults, with runs really launched
through a Dagster instance (DefaultRunCoordinator: each submitted run starts at once in a
process of its own): every endpoint's success and error paths, over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import httpx
import pytest
from support.api import (
    AUTH,
    TOKENS,
    ApiServer,
    dagster_home_launching_at_once,
    read_events,
    wait_for_run,
)
from support.worlds import NEWS_STAGES, World, news_world

from factflow_replay_dagster.executions import ExecutionStatus
from factflow_replay_dagster.layout import stage_prefix
from factflow_replay_dagster.pipelines import sample_config
from factflow_replay_dagster.runtime import run_until_finished
from factflow_replay_dagster.snapshot import ConfigSnapshot

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    yield from news_world({"FACTFLOW_HOME": str(tmp_path_factory.mktemp("api-home"))})


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return dagster_home_launching_at_once(tmp_path_factory.mktemp("dagster-home"))


@pytest.fixture(scope="module")
def server(
    world: World, home: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApiServer]:
    env = {**world.env, "DAGSTER_HOME": str(home), "FACTFLOW_API_TOKENS": ",".join(TOKENS)}
    api = ApiServer(env, log_path=tmp_path_factory.mktemp("api-log") / "api.log").start()
    try:
        yield api
    finally:
        api.stop()


@pytest.fixture
def client(server: ApiServer) -> Iterator[httpx.Client]:
    with server.client() as opened:
        yield opened


def run_count(home: Path) -> int:
    with dg.DagsterInstance.from_config(str(home)) as instance:
        return instance.get_runs_count()


def replay(client: httpx.Client, execution_id: str, **body: Any) -> httpx.Response:
    return client.post(
        f"/api/v1/executions/{execution_id}/replay",
        json={"from_stage": "parse", "to_route": "enrich", **body},
    )


# -- authentication ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "query", "code"),
    [
        ({}, "", "unauthorized"),
        ({"Authorization": "Bearer not-the-token-at-all-000"}, "", "unauthorized"),
        ({"Authorization": f"Basic {TOKENS[0]}"}, "", "unauthorized"),
        ({}, f"?token={TOKENS[0]}", "token_in_query"),
        ({}, f"?access_token={TOKENS[1]}", "token_in_query"),
        (AUTH, f"?access_token={TOKENS[1]}", "token_in_query"),  # refused even with a header
    ],
    ids=["none", "wrong", "not-bearer", "query-token", "query-access-token", "query-and-header"],
)
def test_requests_without_a_valid_token_are_refused_and_start_nothing(
    server: ApiServer, world: World, home: Path, headers: dict[str, str], query: str, code: str
) -> None:
    before = run_count(home)
    with server.client(headers) as anonymous:
        for method, path in [
            ("POST", f"/api/v1/executions/{world.parent.id}/replay"),
            ("POST", "/api/v1/replay"),
            ("POST", f"/api/v1/executions/{world.parent.id}/recover"),
            ("GET", "/api/v1/executions"),
            ("GET", "/readyz"),
            ("GET", "/openapi.json"),
        ]:
            body = {"from_stage": "parse", "to_route": "enrich"} if method == "POST" else None
            response = anonymous.request(method, path + query, json=body)
            assert response.status_code == 401, (path, response.text)
            assert response.json()["code"] == code
            assert response.headers["www-authenticate"].startswith("Bearer")
    assert run_count(home) == before
    log = server.log()
    assert TOKENS[0] not in log
    assert TOKENS[1] not in log
    if query:
        assert f"{query.partition('=')[0]}=***" in log  # the access log, redacted


def test_either_token_of_a_rotation_is_accepted_and_healthz_needs_none(server: ApiServer) -> None:
    for token in TOKENS:
        with server.client({"Authorization": f"Bearer {token}"}) as c:
            assert c.get("/api/v1/executions").status_code == 200
    with server.client(None) as anonymous:
        assert anonymous.get("/healthz").json() == {"status": "ok"}


# -- replay ------------------------------------------------------------------------------------


def test_replay_over_http_end_to_end_with_events_and_the_child(
    client: httpx.Client, world: World, home: Path
) -> None:
    response = replay(client, world.parent.id, limit=30, reason="over http")
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert accepted["replay_id"] == f"replay-{accepted['dagster_run_id']}"
    assert response.headers["location"] == accepted["status_url"]
    events = read_events(client, accepted["events_url"])
    assert [e["event"] for e in events][-1] == "end"
    final = events[-1]["data"]
    assert (final["state"], final["confirmed"], final["total"]) == ("SUCCEEDED", 30, 30)
    assert final["last_confirmed_key"].endswith("news-0030.json")
    assert final["child_execution_id"] == accepted["child_execution_id"]
    assert all(e["data"]["confirmed"] <= 30 for e in events)
    run = wait_for_run(home, accepted["dagster_run_id"])
    assert run.status == dg.DagsterRunStatus.SUCCESS
    assert run.tags["factflow/requested_by"] == "api"
    assert run.tags["factflow/replay_id"] == accepted["replay_id"]
    # Set at submission too, for the run queue's limits (replay_launch_tags).
    assert run.tags["factflow/queue"] == "news.enrich"
    assert run.tags["factflow/source_execution"] == world.parent.id
    assert run.tags["factflow/kind"] == "replay"
    # The child runs with the reference runtime, from the replayed artefacts only.
    child = run_until_finished(
        accepted["child_execution_id"],
        world.news.config.queues(),
        **world.components.runtime(),
        timeout=300,
    )
    assert child.status is ExecutionStatus.SUCCEEDED
    shown = client.get(accepted["execution_url"]).json()
    assert shown["execution"]["status"] == "SUCCEEDED"
    source = shown["execution"]["replay_source"]
    assert (source["parent_execution_id"], source["reason"]) == (world.parent.id, "over http")
    assert [(r["route"], r["stage"], r["artefact_count"]) for r in shown["lineage"]] == [
        ("enrich", "annotate", 30),
        ("enrich", "index", 30),
    ]
    parent = client.get(f"/api/v1/executions/{world.parent.id}").json()
    assert accepted["child_execution_id"] in parent["children"]
    assert accepted["replay_id"] in [r["replay_id"] for r in parent["replays"]]
    got = client.get(accepted["status_url"]).json()
    assert (got["state"], got["dagster_run_status"]) == ("SUCCEEDED", "SUCCESS")
    listed = client.get("/api/v1/executions", params={"status": "SUCCEEDED", "limit": 1000}).json()
    assert {world.parent.id, child.id} <= {e["id"] for e in listed}


def test_dry_run_answers_the_plan_and_starts_nothing(
    client: httpx.Client, world: World, home: Path
) -> None:
    before = run_count(home)
    response = replay(client, world.parent.id, dry_run=True)
    assert response.status_code == 200, response.text
    plan = response.json()
    assert (plan["count"], plan["queue"], plan["to_route"]) == (240, "news.enrich", "enrich")
    assert plan["first_key"].endswith("news-0001.json")
    assert plan["last_key"].endswith("news-0240.json")
    assert plan["bytes"] > 0
    assert run_count(home) == before


@pytest.mark.parametrize(
    ("execution", "body", "status", "code", "field"),
    [
        ("no-such-exec", {}, 404, "unknown_execution", "execution_id"),
        ("bad..id", {}, 400, "invalid_id", "execution_id"),
        ("PARENT", {"from_stage": "summarise"}, 404, "unknown_stage", "from_stage"),
        ("PARENT", {"to_route": "publish"}, 404, "unknown_route", "to_route"),
        ("PARENT", {"source_route": "archive"}, 404, "unknown_route", "source_route"),
        ("PARENT", {"from_stage": "../../parse"}, 400, "invalid_id", "from_stage"),
        ("PARENT", {"limit": 0}, 422, "invalid_request", "limit"),
        ("PARENT", {"surprise": 1}, 422, "invalid_request", "surprise"),
        ("PARENT", {"child_execution_id": "PARENT"}, 409, "invalid_state", None),
        ("PARENT", {"match": "nothing-*.json", "dry_run": True}, 404, "no_artefacts", None),
    ],
    ids=[
        "unknown-execution",
        "bad-id",
        "unknown-stage",
        "unknown-route",
        "unknown-source-route",
        "traversal",
        "limit-0",
        "unknown-field",
        "child-exists",
        "nothing-matches",
    ],
)
def test_bad_replays_are_refused_with_their_code_and_start_nothing(
    client: httpx.Client,
    world: World,
    home: Path,
    execution: str,
    body: dict[str, Any],
    status: int,
    code: str,
    field: str | None,
) -> None:
    parent = world.parent.id
    body = {k: parent if v == "PARENT" else v for k, v in body.items()}
    before = run_count(home)
    response = replay(client, parent if execution == "PARENT" else execution, **body)
    assert response.status_code == status, response.text
    error = response.json()
    assert (error["code"], error["field"]) == (code, field)
    assert error["message"]
    assert run_count(home) == before


def test_cancel_then_resume_over_http(client: httpx.Client, world: World, home: Path) -> None:
    queue = world.emptied_queue("news.enrich")
    accepted = replay(client, world.parent.id, rate=25.0).json()
    replay_id = accepted["replay_id"]
    url = accepted["status_url"]
    status = client.get(url).json()
    while status["confirmed"] < 20:
        assert status["state"] in ("PENDING", "PLANNED", "RUNNING"), status
        status = client.get(url).json()
    cancelled = client.post(f"{url}/cancel")
    assert cancelled.status_code == 202, cancelled.text
    assert cancelled.json()["dagster_run_id"] == accepted["dagster_run_id"]
    events = read_events(client, accepted["events_url"])
    stopped = events[-1]["data"]
    assert stopped["state"] == "CANCELLED"
    assert 20 <= stopped["confirmed"] < 240
    assert wait_for_run(home, accepted["dagster_run_id"]).status == dg.DagsterRunStatus.CANCELED
    again = client.post(f"{url}/cancel")
    assert (again.status_code, again.json()["code"]) == (409, "invalid_state")

    resumed = client.post(f"{url}/resume")
    assert resumed.status_code == 202, resumed.text
    assert resumed.json()["replay_id"] == replay_id
    assert resumed.json()["child_execution_id"] == accepted["child_execution_id"]
    final = read_events(client, accepted["events_url"])[-1]["data"]
    assert (final["state"], final["confirmed"]) == ("SUCCEEDED", 240)
    run = wait_for_run(home, resumed.json()["dagster_run_id"])
    assert run.tags["factflow/replay_id"] == replay_id
    assert run.tags["factflow/queue"] == "news.enrich"
    assert queue.depth("news.enrich") == 241  # every artefact once, and the end marker
    finished = client.post(f"{url}/resume")
    assert (finished.status_code, finished.json()["code"]) == (409, "invalid_state")
    named = replay(client, world.parent.id, replay_id=replay_id)
    assert (named.status_code, named.json()["code"]) == (409, "invalid_state")


def test_unknown_replays_are_404(client: httpx.Client) -> None:
    for method, path in [
        ("GET", "/api/v1/replays/replay-nothing"),
        ("GET", "/api/v1/replays/replay-nothing/events"),
        ("POST", "/api/v1/replays/replay-nothing/cancel"),
        ("POST", "/api/v1/replays/replay-nothing/resume"),
    ]:
        response = client.request(method, path)
        assert response.status_code == 404, (path, response.text)
        assert (response.json()["code"], response.json()["field"]) == (
            "unknown_replay",
            "replay_id",
        )
    bad = client.get("/api/v1/replays/..")
    assert bad.status_code in (400, 404)


# -- rerun and recovery ------------------------------------------------------------------------


def test_rerun_of_a_stage_over_http(client: httpx.Client, world: World, home: Path) -> None:
    refused = client.post(
        "/api/v1/replay", json={"execution_id": world.parent.id, "stage": "summarise"}
    )
    assert (refused.status_code, refused.json()["code"]) == (404, "unknown_stage")
    wrong_route = client.post(
        "/api/v1/replay",
        json={"execution_id": world.parent.id, "stage": "index", "route": "ingest"},
    )
    assert (wrong_route.status_code, wrong_route.json()["field"]) == (404, "stage")
    before = world.components.executions.stage_lineage(world.parent.id, "enrich", "index")
    assert before is not None
    response = client.post(
        "/api/v1/replay",
        json={
            "execution_id": world.parent.id,
            "stage": "index",
            "only_this_stage": True,
            "reason": "reindex over http",
        },
    )
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert (accepted["kind"], accepted["route"], accepted["stage"]) == ("rerun", "enrich", "index")
    run = wait_for_run(home, accepted["dagster_run_id"])
    assert run.status == dg.DagsterRunStatus.SUCCESS
    assert run.tags["factflow/requested_by"] == "api"
    after = world.components.executions.stage_lineage(world.parent.id, "enrich", "index")
    assert after is not None
    assert after.attempt == before.attempt + 1
    assert after.note is not None
    assert after.note["rerun"]["requested_by"] == "api"
    # Let the rerun finish before other tests read the parent.
    world.emptied_queue("news.enrich.index")
    world.components.executions.set_status(world.parent.id, ExecutionStatus.SUCCEEDED)


def _failed_execution(world: World, execution_id: str) -> None:
    """An execution of news whose fetch and parse succeeded (30 parse artefacts stored) and
    whose annotate failed."""
    store, artefacts = world.components.executions, world.components.artefacts
    store.create_execution(execution_id, ConfigSnapshot.load(sample_config("news")))
    attempt = store.begin_attempt(execution_id, NEWS_STAGES)
    source = stage_prefix(world.parent.id, "ingest", "parse")
    target = stage_prefix(execution_id, "ingest", "parse")
    for info in list(artefacts.list(source))[:30]:
        artefacts.write(target + info.key[len(source) :], artefacts.read(info.key))
    for route, stage in NEWS_STAGES[:2]:
        store.set_inputs_expected(execution_id, route, stage, attempt, 0)
    store.fail_stage(execution_id, "enrich", "annotate", attempt, "boom")


def test_recover_over_http(client: httpx.Client, world: World, home: Path) -> None:
    refused = client.post(f"/api/v1/executions/{world.parent.id}/recover")
    assert (refused.status_code, refused.json()["code"]) == (409, "not_failed")
    unknown = client.post("/api/v1/executions/no-such-exec/recover", json={"force": True})
    assert (unknown.status_code, unknown.json()["code"]) == (404, "unknown_execution")
    _failed_execution(world, "api-failed-1")
    response = client.post(
        "/api/v1/executions/api-failed-1/recover", json={"reason": "over http", "force": True}
    )
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert (accepted["route"], accepted["stage"]) == ("enrich", "annotate")
    run = wait_for_run(home, accepted["dagster_run_id"])
    assert run.status == dg.DagsterRunStatus.SUCCESS
    shown = client.get("/api/v1/executions/api-failed-1").json()
    [recovery] = shown["recoveries"]
    assert (recovery["requested_by"], recovery["reason"]) == ("api", "over http")
    assert recovery["dagster_run_id"] == accepted["dagster_run_id"]
    again = client.post("/api/v1/executions/api-failed-1/recover", json={"force": True})
    assert again.status_code == 409
    assert again.json()["code"] in ("already_recovering", "not_failed")
    world.emptied_queue("news.enrich")


# -- readiness ---------------------------------------------------------------------------------


def test_readyz_names_what_is_down(
    client: httpx.Client, world: World, home: Path, tmp_path: Path
) -> None:
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {
        "database": "ok",
        "storage": "ok",
        "broker": "ok",
        "dagster": "ok",
    }
    env = {
        **world.env,
        "DAGSTER_HOME": str(home),
        "FACTFLOW_API_TOKENS": TOKENS[0],
        "FACTFLOW_BROKER_URL": "amqp://guest:pw-s3cret@127.0.0.1:1/%2F",
    }
    down = ApiServer(env, log_path=tmp_path / "api.log").start()
    try:
        with down.client({"Authorization": f"Bearer {TOKENS[0]}"}) as c:
            answer = c.get("/readyz")
            assert answer.status_code == 503
            assert answer.json()["down"] == ["broker"]
            assert "127.0.0.1:1" in answer.json()["checks"]["broker"]
            refused = replay(c, world.parent.id)
            assert (refused.status_code, refused.json()["code"]) == (503, "broker_unavailable")
            assert "pw-s3cret" not in answer.text + refused.text
    finally:
        down.stop()
    assert "pw-s3cret" not in down.log()
