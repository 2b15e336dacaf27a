"""The production instance profile, end to end: deploy/dagster.production.yaml verbatim as the
instance of a code server + webserver + daemon, Dagster's storage and the execution store on
one real PostgreSQL (two databases), RabbitMQ and SeaweedFS; every run submitted over GraphQL
into the queued run coordinator, whose daemon launches it under the profile's tag limits."""

from __future__ import annotations

import collections
import contextlib
import itertools
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pika
import pytest
from dagster_graphql import DagsterGraphQLClient
from support.environments import drain, peek, queue_depth, server_env
from support.servers.dagster_deployment import (
    LOCATION_NAME,
    DagsterDeployment,
    dagster_database,
)
from support.servers.postgres import PostgresServer
from support.worlds import NEWS_OBJECTS, World, news_world, stored_names

from factflow_replay_dagster.executions import ExecutionStatus
from factflow_replay_dagster.messages import ARTEFACT_TYPE, END_TYPE, Headers
from factflow_replay_dagster.replay import ReplayRequest, replay_launch_tags
from factflow_replay_dagster.runtime import run_until_finished

ROOT = Path(__file__).resolve().parents[2]
PROFILE = ROOT / "deploy" / "dagster.production.yaml"
QUEUE = "news.enrich"
_FINISHED = {"SUCCESS", "FAILURE", "CANCELED"}

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.rabbitmq, pytest.mark.s3]


@dataclass
class Production:
    world: World
    dagster: DagsterDeployment
    postgres: PostgresServer
    database: str  # Dagster's own, next to the execution store's
    shared: Path  # the volume DAGSTER_COMPUTE_LOGS_DIR and DAGSTER_ARTIFACTS_DIR are on


@pytest.fixture(scope="module")
def production(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Production]:
    """The servers, the news pipeline run once (the parent), and the Dagster deployment,
    started while the parent runs."""
    postgres: PostgresServer = request.getfixturevalue("postgres_server")
    with pytest.MonkeyPatch.context() as monkeypatch:
        env = server_env(request, tmp_path_factory.mktemp("servers"), monkeypatch)
        shared = tmp_path_factory.mktemp("shared-volume")
        dagster_env = {
            **env,
            **dagster_database(postgres, "dagster_production"),
            "DAGSTER_COMPUTE_LOGS_DIR": str(shared / "compute_logs"),
            "DAGSTER_ARTIFACTS_DIR": str(shared / "artifacts"),
        }
        dagster = DagsterDeployment(
            PROFILE, base_dir=tmp_path_factory.mktemp("production"), env=dagster_env
        )
        dagster.start()
        try:
            for world in news_world(env):
                dagster.wait_ready()
                database = dagster_env["DAGSTER_POSTGRES_DB"]
                yield Production(world, dagster, postgres, database, shared)
        finally:
            dagster.stop()


@pytest.fixture
def world(production: Production) -> World:
    url = production.world.env["FACTFLOW_BROKER_URL"]
    with contextlib.suppress(pika.exceptions.ChannelClosedByBroker):  # not declared yet
        drain(url, QUEUE)
    return production.world


@pytest.fixture
def dagster(production: Production) -> DagsterDeployment:
    return production.dagster


def submit(dagster: DagsterDeployment, world: World, **fields: Any) -> str:
    """Submit replay_job over GraphQL with the tags the CLI and the HTTP API give it."""
    config = world.good_request(**fields)
    request = ReplayRequest.parse(config)
    tags = replay_launch_tags(world.components.executions, request)
    client = DagsterGraphQLClient("127.0.0.1", port_number=dagster.port)
    return client.submit_job_execution(
        "replay_job", repository_location_name=LOCATION_NAME, run_config=config, tags=tags
    )


RUNS = """
query($ids: [String!]) { runsOrError(filter: {runIds: $ids}) { ... on Runs { results {
  runId status creationTime startTime endTime tags { key value } } } } }
"""
EVENTS = """
query($id: ID!) { runOrError(runId: $id) { ... on Run {
  eventConnection { events { __typename ... on MessageEvent { message }
  ... on ExecutionStepFailureEvent { error { message } } } } } } }
"""


def runs(dagster: DagsterDeployment, run_ids: list[str]) -> dict[str, dict[str, Any]]:
    results = dagster.graphql(RUNS, {"ids": run_ids})["runsOrError"]["results"]
    return {r["runId"]: {**r, "tags": {t["key"]: t["value"] for t in r["tags"]}} for r in results}


def events(dagster: DagsterDeployment, run_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = dagster.graphql(EVENTS, {"id": run_id})["runOrError"][
        "eventConnection"
    ]["events"]
    return found


def wait_for(dagster: DagsterDeployment, run_id: str, timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = str(runs(dagster, [run_id])[run_id]["status"])
        if status in _FINISHED:
            return status
        time.sleep(0.5)
    pytest.fail(f"run {run_id} did not finish:\n{dagster.log_tail()}")


def cli(world: World, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "factflow_replay_dagster.cli", "execution", *args],
        capture_output=True,
        text=True,
        env={**world.env, "PATH": str(Path(sys.executable).parent)},
        check=False,
        timeout=180,
    )


def runs_in_postgres(production: Production) -> dict[str, str]:
    """run id -> status, read from Dagster's own database: that is where the runs live."""
    rows = production.postgres.psql("SELECT run_id, status FROM runs", database=production.database)
    return dict(line.split("|") for line in rows.splitlines() if line)


def test_a_full_replay_goes_through_the_run_queue_and_its_child_completes(
    world: World, dagster: DagsterDeployment, production: Production
) -> None:
    result = cli(
        world,
        *("replay", world.parent.id, "--from-stage", "parse", "--to-route", "enrich"),
        *("--reason", "production profile", "--dagster-url", dagster.url, "--json"),
    )
    assert result.returncode == 0, f"{result.stderr}\n{dagster.log_tail()}"
    summary = json.loads(result.stdout)
    run_id = summary["run_id"]
    assert (summary["run_status"], summary["replay"]["confirmed"]) == ("SUCCESS", 240)

    # Queued with its limits' tags from submission on, then launched by the daemon.
    run = runs(dagster, [run_id])[run_id]
    assert run["tags"]["factflow/queue"] == QUEUE
    assert run["tags"]["factflow/source_execution"] == world.parent.id
    assert run["tags"]["factflow/requested_by"] == "cli"
    log = events(dagster, run_id)
    kinds = [e["__typename"] for e in log]
    assert kinds.index("RunEnqueuedEvent") < kinds.index("RunStartingEvent")
    # The package's own log lines reach the run's event log (python_logs in the profile).
    messages = [e.get("message") or "" for e in log]
    assert any("succeeded: 240 artefacts confirmed" in m for m in messages), messages
    # Dagster's runs are in PostgreSQL, next to (not in) the execution store's database.
    assert runs_in_postgres(production)[run_id] == "SUCCESS"
    # Step logs and step outputs on the shared volume, not in a run worker's own folders.
    assert list((production.shared / "compute_logs" / run_id).rglob("*.complete"))
    assert (production.shared / "artifacts" / "storage" / run_id / "plan_replay" / "plan").is_file()

    # Every artefact on the queue once, by id, in key order, then the end marker.
    url = world.env["FACTFLOW_BROKER_URL"]
    queued = peek(url, QUEUE)
    artefacts = [p for p, _ in queued if p.type == ARTEFACT_TYPE]
    assert [p.type for p, _ in queued][-1] == END_TYPE
    assert len({p.message_id for p in artefacts}) == len(artefacts) == 240
    keys = [p.headers[Headers.OBJECT_KEY].rsplit("/", 1)[-1] for p in artefacts]
    assert keys == NEWS_OBJECTS

    child = run_until_finished(
        summary["child_execution_id"],
        world.news.config.queues(),
        **world.components.runtime(),
        timeout=300,
    )
    assert child.status is ExecutionStatus.SUCCEEDED, child.error
    for stage in ("annotate", "index"):
        assert stored_names(world.components, child.id, "enrich", stage) == NEWS_OBJECTS
    source = child.replay_source
    assert source is not None
    assert (source.parent_execution_id, source.from_stage, source.to_route, source.queue) == (
        world.parent.id,
        "parse",
        "enrich",
        QUEUE,
    )
    assert (source.confirmed, source.total, source.reason, source.dagster_run_id) == (
        240,
        240,
        "production profile",
        run_id,
    )
    assert world.components.executions.counter(world.parent.id, "fetch") == 240  # not again


def test_a_dry_run_plans_and_publishes_nothing(world: World, dagster: DagsterDeployment) -> None:
    children = len(world.components.executions.children(world.parent.id))
    run_id = submit(dagster, world, dry_run=True)
    assert wait_for(dagster, run_id) == "SUCCESS", dagster.log_tail()
    assert world.components.executions.list_replays(dagster_run_id=run_id) == []
    assert len(world.components.executions.children(world.parent.id)) == children
    assert queue_depth(world.env["FACTFLOW_BROKER_URL"], QUEUE) == 0
    messages = [e.get("message") or "" for e in events(dagster, run_id)]
    assert any("plan: 240 artefacts" in m for m in messages), messages


def test_bad_input_fails_cleanly(
    world: World, dagster: DagsterDeployment, production: Production
) -> None:
    replays = len(world.components.executions.list_replays())
    # Past the submission checks (the execution and route exist), refused by the plan.
    run_id = submit(dagster, world, from_stage="summarise")
    assert wait_for(dagster, run_id) == "FAILURE"
    failures = [
        e["error"]["message"]
        for e in events(dagster, run_id)
        if e["__typename"] == "ExecutionStepFailureEvent"
    ]
    assert any("summarise" in m for m in failures), failures
    # Refused before it is queued: the CLI resolves the launch tags first (exit code 2).
    before = runs_in_postgres(production)
    refused = cli(
        world,
        *("replay", "no-such-execution", "--from-stage", "parse", "--to-route", "enrich"),
        *("--dagster-url", dagster.url),
    )
    assert refused.returncode == 2, refused.stderr
    assert "no-such-execution" in refused.stderr
    assert runs_in_postgres(production) == before
    assert len(world.components.executions.list_replays()) == replays
    assert queue_depth(world.env["FACTFLOW_BROKER_URL"], QUEUE) == 0


@contextlib.contextmanager
def as_quorum_queue(amqp_url: str, queue: str) -> Iterator[None]:
    """``queue`` replaced by an empty quorum queue of that name, then by a classic one again."""
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        channel = connection.channel()
        channel.queue_delete(queue)
        channel.queue_declare(queue, durable=True, arguments={"x-queue-type": "quorum"})
        yield
    finally:
        channel = connection.channel()
        channel.queue_delete(queue)
        channel.queue_declare(queue, durable=True)
        connection.close()


def test_replays_of_one_source_run_one_at_a_time(world: World, dagster: DagsterDeployment) -> None:
    url = world.env["FACTFLOW_BROKER_URL"]
    with as_quorum_queue(url, QUEUE):  # replays publish to quorum queues as to classic ones
        received, seen, in_flight_at_once = three_replays_of_one_source(world, dagster)
    assert [str(r["status"]) for r in seen.values()] == ["SUCCESS"] * 3
    assert in_flight_at_once == 1
    spans = sorted((r["startTime"], r["endTime"]) for r in seen.values())
    assert all(later[0] >= earlier[1] for earlier, later in itertools.pairwise(spans))

    # One after the other on the broker too: each child's 80 artefacts and end marker in one
    # uninterrupted block, in key order.
    blocks = [
        child for child, _ in itertools.groupby(p.headers[Headers.EXECUTION] for p, _ in received)
    ]
    assert len(blocks) == len(set(blocks)) == 3
    per_child = collections.defaultdict(list)
    for properties, _ in received:
        if properties.type == ARTEFACT_TYPE:
            per_child[properties.headers[Headers.EXECUTION]].append(
                properties.headers[Headers.OBJECT_KEY].rsplit("/", 1)[-1]
            )
    assert all(keys == NEWS_OBJECTS[:80] for keys in per_child.values())


def three_replays_of_one_source(
    world: World, dagster: DagsterDeployment
) -> tuple[list[tuple[Any, bytes]], dict[str, dict[str, Any]], int]:
    """Submit three replays of the parent, each long enough (80 artefacts at 40/s) to overlap
    the others if the profile's limit of 1 per source execution did not hold; watch them to
    the end. Returns what reached the queue, the runs, and the most ever in flight at once."""
    run_ids = [submit(dagster, world, limit=80, rate=40.0, reason=f"r{i}") for i in range(3)]
    in_flight_at_once = 0
    deadline = time.monotonic() + 150
    while True:
        seen = runs(dagster, run_ids)
        statuses = [str(r["status"]) for r in seen.values()]
        in_flight_at_once = max(
            in_flight_at_once, sum(s in ("STARTING", "STARTED") for s in statuses)
        )
        for run in seen.values():  # a run waiting in the queue already carries its limits' tags
            if run["status"] == "QUEUED":
                assert run["tags"]["factflow/source_execution"] == world.parent.id
        if all(s in _FINISHED for s in statuses):
            break
        assert time.monotonic() < deadline, f"{statuses}\n{dagster.log_tail()}"
        time.sleep(0.25)
    return drain(world.env["FACTFLOW_BROKER_URL"], QUEUE), seen, in_flight_at_once
