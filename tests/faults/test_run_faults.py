"""Process faults and load on real Dagster: a run worker SIGKILLed mid-replay on ``dagster dev``,
and twenty replays at once through the production profile's run queue.

The in-process CLI run killed mid-replay is ``tests/cli/test_killed_replay.py``; here the
replay runs as Dagster runs it under ``dagster dev`` (``defs/dagster_instance.yaml``, the
instance file of the CLI and ``factflow-replay ui``, run monitoring on): a run worker process
that the code server starts. A one-shard replay publishes in it (in-process executor); a
sharded one in a step process per shard (multiprocess executor).

Who notices the kill: Dagster's default run launcher cannot check a run worker's health
(``supports_check_run_worker_health`` is False), so run monitoring does not; the code server
that started the process sees it exit and fails the run. The replay is closed by
``replay_failure_sensor`` (the run's failure) or ``stale_replay_sensor`` (its heartbeat),
whichever comes first. Each test prints its figures.
"""

from __future__ import annotations

import itertools
import os
import re
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from dagster_graphql import DagsterGraphQLClient
from support.environments import reset_queues, server_env
from support.faults import consume, record_figures, stored_parent, wait_for
from support.servers.dagster_deployment import LOCATION_NAME, DagsterDeployment, dagster_database
from support.servers.dagster_dev import DagsterDev
from support.servers.postgres import PostgresServer

from factflow_replay_dagster.connect import open_execution_store, open_publisher
from factflow_replay_dagster.executions import ExecutionStatus, ExecutionStore, ReplayState
from factflow_replay_dagster.pipelines import sample_config
from factflow_replay_dagster.replay import ReplayRequest, replay_launch_tags
from factflow_replay_dagster.run_tags import QUEUE as QUEUE_TAG
from factflow_replay_dagster.settings import Settings
from factflow_replay_dagster.snapshot import ConfigSnapshot

pytestmark = [pytest.mark.slow, pytest.mark.s3, pytest.mark.postgres, pytest.mark.rabbitmq]

ROOT = Path(__file__).resolve().parents[2]
PROFILE = ROOT / "deploy" / "dagster.production.yaml"
QUEUE = "news.enrich"
FINISHED = {"SUCCESS", "FAILURE", "CANCELED"}

ARTEFACTS = 300
RATE = 40.0  # artefacts/s: the kill lands mid-replay
FAULT_AT = 60  # confirmed (and saved) when the process is killed
WINDOW = 50  # FACTFLOW_CONFIRM_WINDOW
PROGRESS_EVERY = 20  # FACTFLOW_PROGRESS_EVERY
STALE_SECONDS = 6.0  # FACTFLOW_REPLAY_STALE_SECONDS: stale_replay_sensor then ticks every 5 s


@dataclass
class Dev:
    """``dagster dev`` on the servers, with the settings its code location reads."""

    server: DagsterDev
    settings: Settings
    env: dict[str, str]

    @property
    def client(self) -> DagsterGraphQLClient:
        return DagsterGraphQLClient("127.0.0.1", port_number=self.server.port)

    def submit(self, config: dict[str, Any]) -> str:
        return self.client.submit_job_execution(
            "replay_job", repository_location_name="factflow", run_config=config
        )

    def status(self, run_id: str) -> str:
        return str(self.client.get_run_status(run_id).value)

    def messages(self, run_id: str) -> list[str]:
        data = self.server.graphql(
            "query($id: ID!) { runOrError(runId: $id) { ... on Run { eventConnection(limit: 5000)"
            " { events { ... on MessageEvent { message } } } } } }",
            {"id": run_id},
        )
        return [e.get("message") or "" for e in data["runOrError"]["eventConnection"]["events"]]


@pytest.fixture(scope="class")
def dev(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dev]:
    with pytest.MonkeyPatch.context() as monkeypatch:
        env = server_env(request, tmp_path_factory.mktemp("servers"), monkeypatch)
        knobs = {
            "FACTFLOW_CONFIRM_WINDOW": str(WINDOW),
            "FACTFLOW_PROGRESS_EVERY": str(PROGRESS_EVERY),
            "FACTFLOW_REPLAY_STALE_SECONDS": str(STALE_SECONDS),
        }
        for name, value in knobs.items():
            monkeypatch.setenv(name, value)
        env.update(knobs)
        settings = Settings.from_env(env)
        with open_publisher(settings) as publisher:
            publisher.declare_queue(QUEUE)
        server = DagsterDev(
            ROOT / "workspace.yaml", base_dir=tmp_path_factory.mktemp("dev"), env=env
        )
        server.start()
        try:
            yield Dev(server, settings, env)
        finally:
            server.stop()


def run_worker_pid(dev: Dev, run_id: str) -> int:
    """The pid of the run's worker process, as the code server that started it reported."""
    for message in dev.messages(run_id):
        found = re.search(r"Started process for run \(pid: (\d+)\)", message)
        if found:
            return int(found.group(1))
    pytest.fail(f"run {run_id} reported no run worker process")


def children(pid: int) -> list[int]:
    """The direct child processes of ``pid`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"


def replay_of(store: ExecutionStore, run_id: str, *, confirmed: int = 0) -> Any:
    found = store.list_replays(dagster_run_id=run_id)
    return found[0] if found and found[0].confirmed >= confirmed else None


#: What is killed: the run worker of a one-shard replay (the in-process executor: it is the
#: publisher), and the run worker alone of a two-shard replay (the multiprocess executor:
#: each shard publishes in a step process of its own, which outlives it).
KILLS = {
    "run worker of a one-shard replay": 1,
    "run worker of a two-shard replay": 2,
}


def step_processes(worker: int) -> list[int]:
    """The run worker's step processes: the Python children it spawned (not its log tails)."""
    return [
        pid
        for pid in children(worker)
        if b"multiprocessing.spawn" in Path(f"/proc/{pid}/cmdline").read_bytes()
    ]


class TestARunWorkerKilledMidReplay:
    """On ``dagster dev``; its servers stop before the load test starts its own."""

    @pytest.mark.parametrize("kill", list(KILLS))
    def test_does_not_stay_running_and_resumes_without_a_gap(
        self, request: pytest.FixtureRequest, dev: Dev, kill: str
    ) -> None:
        killed_run_worker_then_resume(request, dev, kill)


def killed_run_worker_then_resume(request: pytest.FixtureRequest, dev: Dev, kill: str) -> None:
    shards = KILLS[kill]
    parent = stored_parent(dev.settings, f"parent-kill-{list(KILLS).index(kill)}", ARTEFACTS)
    consume(dev.settings.broker_url.get_secret_value(), QUEUE)
    config = {"source_execution_id": parent.id, "from_stage": "parse", "to_route": "enrich"}
    with open_execution_store(dev.settings) as store:
        run_id = dev.submit({**config, "rate": RATE, "shards": shards})
        replay = wait_for(
            "the replay confirmed its first artefacts",
            lambda: replay_of(store, run_id, confirmed=FAULT_AT),
            timeout=180,
        )
        worker = run_worker_pid(dev, run_id)
        steps = step_processes(worker)
        if shards == 1:  # the in-process executor: the run worker publishes
            assert not steps
            assert replay.owner.endswith(f" pid {worker}")
        else:
            assert len(steps) == shards, steps
        os.kill(worker, signal.SIGKILL)
        orphans = [pid for pid in steps if alive(pid)]  # publishing on, their parent gone
        at_kill = store.get_replay(replay.replay_id)

        # Nothing stays in flight: the run ends, the replay and its child are closed.
        status = wait_for(
            "the run ended", lambda: (s := dev.status(run_id)) in FINISHED and s, timeout=120
        )
        closed = wait_for(
            "the replay was closed",
            lambda: (
                (r := store.get_replay(replay.replay_id)).state is not ReplayState.RUNNING and r
            ),
            timeout=120,
        )
        orphans_when_closed = [pid for pid in orphans if alive(pid)]
        child = store.get_execution(str(closed.child_execution_id))
        assert status in ("FAILURE", "CANCELED")
        assert closed.state in (ReplayState.FAILED, ReplayState.CANCELLED)
        assert child.status in (ExecutionStatus.FAILED, ExecutionStatus.CANCELLED)

        resumed_run = dev.submit({**config, "resume_replay_id": replay.replay_id})
        final = wait_for(
            "the resume ended",
            lambda: (s := dev.status(resumed_run)) in FINISHED and s,
            timeout=180,
        )
        assert final == "SUCCESS", dev.server.log_tail()
        done = store.get_replay(replay.replay_id)
        assert (done.state, done.confirmed) == (ReplayState.SUCCEEDED, ARTEFACTS)

    received = consume(dev.settings.broker_url.get_secret_value(), QUEUE)
    assert received.unique == parent.message_ids  # every artefact, by id: no gap
    assert received.end_markers == 1
    allowed = shards * (PROGRESS_EVERY + WINDOW)  # per shard: its saves and its window
    assert received.duplicates <= allowed
    record_figures(
        request,
        f"dagster dev, {kill} SIGKILLed mid-replay",
        faults_survived=1,
        artefacts=ARTEFACTS,
        confirmed_at_kill=at_kill.confirmed,
        run_ended=status,
        replay_closed_as=closed.state.value,
        step_processes_left_publishing=len(orphans),
        of_them_alive_when_the_replay_was_closed=len(orphans_when_closed),
        messages_lost=len(parent.message_ids - received.unique),
        duplicates=received.duplicates,
        allowed=f"{allowed} ({shards} x (progress_every {PROGRESS_EVERY} + window {WINDOW}))",
        run_ended_by=ended_by(dev.messages(run_id)),
        replay_closed_by=closed_by(closed.error or ""),
    )


def ended_by(messages: list[str]) -> str:
    """Who ended a run whose worker was killed, from its event log."""
    for message in messages:
        if "Run execution process for" in message:
            return "the code server (its run process died)"
        if "Detected run worker status" in message:
            return "run monitoring"
        if "stopped without a word" in message:
            return "stale_replay_sensor"
    return "?"


def closed_by(error: str) -> str:
    """Who closed a replay whose process was killed, from its error."""
    if "stopped without a word" in error:
        return "its heartbeat (stale_replay_sensor)"
    return "replay_failure_sensor (the run's failure)"


# -- load: twenty replays at once through the production profile's run queue ----------------

LOAD_REPLAYS = 20
LOAD_QUEUES = 4  # target queues: the parents' snapshots send route enrich to one of these
LOAD_ARTEFACTS = 200  # per parent

RUNS = """
query($ids: [String!]) { runsOrError(filter: {runIds: $ids}) { ... on Runs { results {
  runId status creationTime startTime endTime tags { key value } } } } }
"""


def load_snapshot(queue: str) -> ConfigSnapshot:
    """``news`` whose route ``enrich`` consumes ``queue``."""
    text = sample_config("news").read_text()
    assert text.count("queue: news.enrich") == 1
    return ConfigSnapshot.parse(text.replace("queue: news.enrich", f"queue: {queue}"))


@pytest.fixture
def production(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[DagsterDeployment, Settings]]:
    """deploy/dagster.production.yaml verbatim as the instance of a code server, a webserver
    and a daemon, Dagster's storage on PostgreSQL (as in tests/e2e/test_production_profile)."""
    postgres: PostgresServer = request.getfixturevalue("postgres_server")
    with pytest.MonkeyPatch.context() as monkeypatch:
        env = server_env(request, tmp_path_factory.mktemp("load-servers"), monkeypatch)
        shared = tmp_path_factory.mktemp("load-shared")
        dagster = DagsterDeployment(
            PROFILE,
            base_dir=tmp_path_factory.mktemp("load-production"),
            env={
                **env,
                **dagster_database(postgres, f"dagster_load_{os.getpid()}"),
                "DAGSTER_COMPUTE_LOGS_DIR": str(shared / "compute_logs"),
                "DAGSTER_ARTIFACTS_DIR": str(shared / "artifacts"),
            },
        )
        dagster.start()
        try:
            yield dagster, Settings.from_env(env)
        finally:
            dagster.stop()


@pytest.mark.timeout(600)
def test_twenty_replays_at_once_go_through_the_run_queue_one_per_target_queue(
    request: pytest.FixtureRequest, production: tuple[DagsterDeployment, Settings]
) -> None:
    dagster, settings = production
    queues = [f"load.enrich-{n}" for n in range(LOAD_QUEUES)]
    reset_queues(settings.broker_url.get_secret_value(), queues)
    with open_publisher(settings) as publisher:
        for queue in queues:
            publisher.declare_queue(queue)
    parents = [
        (
            stored_parent(
                settings,
                f"parent-load-{n:02d}",
                LOAD_ARTEFACTS,
                snapshot=load_snapshot(queues[n % LOAD_QUEUES]),
            ),
            queues[n % LOAD_QUEUES],
        )
        for n in range(LOAD_REPLAYS)
    ]
    dagster.wait_ready()
    client = DagsterGraphQLClient("127.0.0.1", port_number=dagster.port)
    run_ids = []
    submitted = time.time()
    with open_execution_store(settings) as store:
        for parent, _ in parents:
            config = {"source_execution_id": parent.id, "from_stage": "parse", "to_route": "enrich"}
            tags = replay_launch_tags(store, ReplayRequest.parse(config))
            run_ids.append(
                client.submit_job_execution(
                    "replay_job",
                    repository_location_name=LOCATION_NAME,
                    run_config=config,
                    tags=tags,
                )
            )

        def finished_runs() -> dict[str, dict[str, Any]] | None:
            results = dagster.graphql(RUNS, {"ids": run_ids})["runsOrError"]["results"]
            done = all(str(r["status"]) in FINISHED for r in results)
            return (
                {r["runId"]: r for r in results} if done and len(results) == len(run_ids) else None
            )

        seen = wait_for("every run ended", finished_runs, timeout=420, interval=1.0)
        replays = {r: store.list_replays(dagster_run_id=r) for r in run_ids}

    assert [str(r["status"]) for r in seen.values()] == ["SUCCESS"] * LOAD_REPLAYS, (
        dagster.log_tail()
    )
    assert all(len(found) == 1 for found in replays.values())
    assert sorted(r[0].confirmed for r in replays.values()) == [LOAD_ARTEFACTS] * LOAD_REPLAYS
    assert all(r[0].state is ReplayState.SUCCEEDED for r in replays.values())

    # The per-queue limit held: runs into one queue never overlapped.
    spans: dict[str, list[tuple[float, float]]] = {q: [] for q in queues}
    for run in seen.values():
        tags = {t["key"]: t["value"] for t in run["tags"]}
        spans[tags[QUEUE_TAG]].append((run["startTime"], run["endTime"]))
    for queue, queue_spans in spans.items():
        ordered = sorted(queue_spans)
        assert len(ordered) == LOAD_REPLAYS // LOAD_QUEUES, queue
        overlaps = [(a, b) for a, b in itertools.pairwise(ordered) if b[0] < a[1]]
        assert not overlaps, (queue, overlaps)
    all_spans = [span for queue_spans in spans.values() for span in queue_spans]
    events = sorted([(start, 1) for start, _ in all_spans] + [(end, -1) for _, end in all_spans])
    at_once = most = 0
    for _, step in events:
        at_once += step
        most = max(most, at_once)

    # Totals: every artefact of every parent on its queue once, by id, and one end marker each.
    url = settings.broker_url.get_secret_value()
    received = {queue: consume(url, queue) for queue in queues}
    for queue in queues:
        expected = frozenset().union(*(p.message_ids for p, q in parents if q == queue))
        assert received[queue].unique == expected, queue
        assert received[queue].duplicates == 0
        assert received[queue].end_markers == LOAD_REPLAYS // LOAD_QUEUES
    first_start = min(r["startTime"] for r in seen.values())
    last_end = max(r["endTime"] for r in seen.values())
    record_figures(
        request,
        f"{LOAD_REPLAYS} replays at once through the production run queue",
        replays=LOAD_REPLAYS,
        succeeded=sum(str(r["status"]) == "SUCCESS" for r in seen.values()),
        artefacts_confirmed=sum(r[0].confirmed for r in replays.values()),
        artefacts_received=sum(len(r.unique) for r in received.values()),
        messages_lost=sum(len(p.message_ids - received[q].unique) for p, q in parents),
        duplicates=sum(r.duplicates for r in received.values()),
        target_queues=LOAD_QUEUES,
        most_runs_at_once=most,
        per_queue_limit=1,
        per_queue_overlaps=0,
        longest_wait_in_queue_s=round(
            max(r["startTime"] - r["creationTime"] for r in seen.values()), 1
        ),
        submit_to_last_end_s=round(last_end - submitted, 1),
        first_start_to_last_end_s=round(last_end - first_start, 1),
    )
