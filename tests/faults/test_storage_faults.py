"""Storage faults mid-replay: the artefact store (SeaweedFS, S3) and the execution store
(PostgreSQL) stopped while a replay publishes into RabbitMQ, then started again.

Each replay runs as a user runs it, ``factflow-replay execution replay`` in a process of its
own (the Dagster job in-process), against servers of this module's own that it stops and
restarts on the same address. What must hold: the run fails with the package's typed error
naming what failed, nothing is counted that the broker did not take, the resume after the
restart completes, and an independent consumer then holds every artefact by message id, sent
twice only within what the replay's bookkeeping allows. Each test prints its figures.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support.environments import reset_queues
from support.faults import (
    StoredParent,
    VanishingStore,
    consume,
    new_replay,
    record_figures,
    stored_parent,
    wait_for,
)
from support.servers.fixtures import serving
from support.servers.postgres import PostgresServer
from support.servers.rabbitmq import RabbitMQServer
from support.servers.seaweedfs import SeaweedFSServer

from factflow_replay_dagster.connect import open_execution_store, open_publisher
from factflow_replay_dagster.errors import (
    ArtefactNotFoundError,
    ExecutionStoreError,
    StorageError,
)
from factflow_replay_dagster.executions import ExecutionStore, ReplayState
from factflow_replay_dagster.queues.base import OutgoingMessage, PublishOutcome
from factflow_replay_dagster.queues.rabbitmq import RabbitMQPublisher
from factflow_replay_dagster.replay import DetachedReplayService, ReplayRequest
from factflow_replay_dagster.settings import Settings

pytestmark = [pytest.mark.slow, pytest.mark.s3, pytest.mark.postgres, pytest.mark.rabbitmq]

QUEUE = "news.enrich"
ARTEFACTS = 400
RATE = 100.0  # artefacts/s: the fault lands mid-replay, not after it
FAULT_AT = 120  # confirmed artefacts when the server is stopped
WINDOW = 50  # FACTFLOW_CONFIRM_WINDOW
PROGRESS_EVERY = 20  # FACTFLOW_PROGRESS_EVERY
STALE_SECONDS = 3.0  # FACTFLOW_REPLAY_STALE_SECONDS


@pytest.fixture(scope="module")
def own_seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFSServer]:
    """A SeaweedFS of this module's own: the session's is not ours to stop."""
    yield from serving(SeaweedFSServer(tmp_path_factory.mktemp("seaweedfs-faults")))


@pytest.fixture(scope="module")
def own_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    """A PostgreSQL of this module's own: the session's is not ours to stop."""
    yield from serving(PostgresServer(tmp_path_factory.mktemp("postgres-faults")))


def environment(
    tmp_path: Path, *, rabbitmq: RabbitMQServer, seaweedfs: SeaweedFSServer, database_url: str
) -> dict[str, str]:
    bucket = seaweedfs.create_bucket(f"faults-{secrets.token_hex(4)}")
    reset_queues(rabbitmq.url, [QUEUE])
    return {
        "FACTFLOW_HOME": str(tmp_path / "home"),
        "FACTFLOW_STORAGE_URL": f"s3://{bucket}/pipelines",
        "FACTFLOW_BROKER_URL": rabbitmq.url,
        "FACTFLOW_DATABASE_URL": database_url,
        "FACTFLOW_CONFIRM_WINDOW": str(WINDOW),
        "FACTFLOW_PROGRESS_EVERY": str(PROGRESS_EVERY),
        "FACTFLOW_REPLAY_STALE_SECONDS": str(STALE_SECONDS),
        "AWS_ENDPOINT_URL_S3": seaweedfs.endpoint_url,
        "AWS_ACCESS_KEY_ID": seaweedfs.access_key,
        "AWS_SECRET_ACCESS_KEY": seaweedfs.secret_key,
        "AWS_REGION": seaweedfs.region_name,
        # AWS_MAX_ATTEMPTS stays at its default (5): the production retries are what must
        # not hang a replay whose storage is gone.
    }


def prepared(env: dict[str, str], parent_id: str) -> tuple[Settings, StoredParent]:
    """The parent's artefacts stored and registered, the target queue declared and empty."""
    settings = Settings.from_env(env)
    parent = stored_parent(settings, parent_id, ARTEFACTS)
    with open_publisher(settings) as publisher:
        publisher.declare_queue(QUEUE)
    return settings, parent


def replay_cli(env: dict[str, str], parent: StoredParent, *args: str) -> subprocess.Popen[str]:
    """``factflow-replay execution replay`` of ``parent``'s parse stage into ``enrich``."""
    environ = {**os.environ, **env}
    environ.pop("DAGSTER_HOME", None)  # the CLI's own instance, under FACTFLOW_HOME
    return subprocess.Popen(
        [
            *(sys.executable, "-m", "factflow_replay_dagster.cli", "execution", "replay"),
            *(parent.id, "--from-stage", "parse", "--to-route", "enrich", "--json", *args),
        ],
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finished(process: subprocess.Popen[str], *, timeout: float = 300) -> dict[str, Any]:
    """The JSON summary of a CLI replay that ended (the exit code in it too)."""
    out, err = process.communicate(timeout=timeout)
    assert "Traceback" not in err, err[-4000:]
    assert out.strip(), f"exit {process.returncode}, nothing on stdout:\n{err[-4000:]}"
    summary: dict[str, Any] = json.loads(out)
    assert summary["exit_code"] == process.returncode, summary
    return summary


def start_and_wait_for_progress(
    env: dict[str, str], parent: StoredParent, store: ExecutionStore
) -> tuple[subprocess.Popen[str], str]:
    """A rate-limited replay started, once ``FAULT_AT`` of it are confirmed and saved."""
    known = {r.replay_id for r in store.list_replays()}
    process = replay_cli(env, parent, "--rate", str(RATE))
    replay = wait_for(
        "the replay confirmed its first artefacts",
        lambda: process.poll() is None and new_replay(store, known, confirmed=FAULT_AT),
        timeout=180,
    )
    return process, replay.replay_id


def resume(env: dict[str, str], parent: StoredParent, replay_id: str) -> dict[str, Any]:
    process = replay_cli(env, parent, "--resume", replay_id)
    summary = finished(process)
    assert summary["exit_code"] == 0, summary
    assert summary["replay"]["state"] == "SUCCEEDED"
    assert summary["replay"]["confirmed"] == ARTEFACTS
    return summary


def test_storage_stopped_mid_replay_fails_naming_the_key_and_resumes_without_a_gap(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    rabbitmq_server: RabbitMQServer,
    own_seaweedfs: SeaweedFSServer,
    postgres_server: PostgresServer,
) -> None:
    database = postgres_server.create_database(f"s3_fault_{secrets.token_hex(3)}")
    env = environment(
        tmp_path, rabbitmq=rabbitmq_server, seaweedfs=own_seaweedfs, database_url=database
    )
    settings, parent = prepared(env, "parent-s3-fault")
    bucket = settings.storage_url.removeprefix("s3://").split("/", 1)[0]
    with open_execution_store(settings) as store:
        process, replay_id = start_and_wait_for_progress(env, parent, store)
        stopping = time.monotonic()
        own_seaweedfs.halt()  # SIGTERM, SIGKILL 3 s later (weed server hangs on SIGTERM)
        failed = finished(process)
        failed_after = time.monotonic() - stopping

        # A typed storage error naming the bucket and the key it could not read.
        assert failed["exit_code"] == StorageError.exit_code
        assert failed["run_status"] == "FAILURE"
        error = failed["error"]
        assert f"bucket {bucket!r}" in error, error
        assert f"executions/{parent.id}/ingest/parse/doc-" in error, error
        record = store.get_replay(replay_id)
        assert record.state is ReplayState.FAILED
        assert f"bucket {bucket!r}" in str(record.error)
        # The position: the last of an unbroken run of confirmed artefacts, in key order.
        assert FAULT_AT <= record.confirmed < ARTEFACTS
        assert record.last_confirmed_key == parent.keys[record.confirmed - 1]
        # The publisher waited for its confirms before failing: what the broker took is
        # exactly what the record counts.
        before = consume(env["FACTFLOW_BROKER_URL"], QUEUE)
        assert len(before.unique) == record.confirmed
        assert before.duplicates == 0
        assert before.end_markers == 0

        own_seaweedfs.restart()
        resume(env, parent, replay_id)
        after = consume(env["FACTFLOW_BROKER_URL"], QUEUE)

    received = before + after
    assert received.unique == parent.message_ids  # every artefact, by id: no gap
    assert received.duplicates <= WINDOW
    assert received.end_markers == 1
    record_figures(
        request,
        "S3 (SeaweedFS) stopped mid-replay",
        faults_survived=1,
        artefacts=ARTEFACTS,
        confirmed_at_fault=record.confirmed,
        messages_lost=len(parent.message_ids - received.unique),
        duplicates=received.duplicates,
        confirm_window=WINDOW,
        seconds_from_stop_to_failure=round(failed_after, 1),
        s3_attempts_per_request=settings.aws_max_attempts,
        error=error,
    )


def test_execution_store_stopped_mid_replay_fails_typed_and_counts_only_what_was_recorded(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    rabbitmq_server: RabbitMQServer,
    seaweedfs_server: SeaweedFSServer,
    own_postgres: PostgresServer,
) -> None:
    database = own_postgres.create_database(f"pg_fault_{secrets.token_hex(3)}")
    env = environment(
        tmp_path, rabbitmq=rabbitmq_server, seaweedfs=seaweedfs_server, database_url=database
    )
    settings, parent = prepared(env, "parent-db-fault")
    with open_execution_store(settings) as store:
        process, replay_id = start_and_wait_for_progress(env, parent, store)
        stopping = time.monotonic()
        own_postgres.halt()  # a fast shutdown: its clients are disconnected
        halted = time.monotonic()
        failed = finished(process)
        failed_after = time.monotonic() - stopping

        # The package's typed error for the execution store, not a driver's traceback.
        assert failed["exit_code"] == ExecutionStoreError.exit_code
        assert failed["run_status"] == "FAILURE"
        error = failed["error"]
        assert error.startswith("execution store at postgresql+psycopg://"), error
        assert "sqlalchemy" not in error.lower()
        assert "replay" not in failed  # the record could not be read: the run's error stands
        # What the broker took while the store was down (nothing publishes now).
        before = consume(env["FACTFLOW_BROKER_URL"], QUEUE)

        own_postgres.restart()
        record = store.get_replay(replay_id)
        # Its process could not record the failure; it stopped beating, and nothing counts
        # what was not recorded: the broker holds at least what the record says was
        # confirmed, and at most a save's worth and a window more (sent again on resume).
        assert record.state is ReplayState.RUNNING
        assert FAULT_AT <= record.confirmed <= len(before.unique)
        assert record.last_confirmed_key == parent.keys[record.confirmed - 1]
        gap = len(before.unique) - record.confirmed
        assert gap <= PROGRESS_EVERY + WINDOW
        assert before.end_markers == 0

        wait_for(  # a resume closes a RUNNING replay only once its heartbeat is stale
            "the replay's heartbeat went stale",
            lambda: time.monotonic() - halted > STALE_SECONDS + 0.5,
            timeout=STALE_SECONDS + 5,
        )
        resume(env, parent, replay_id)
        after = consume(env["FACTFLOW_BROKER_URL"], QUEUE)
        closed = store.get_replay(replay_id)

    received = before + after
    assert received.unique == parent.message_ids  # every artefact, by id: no gap
    assert received.duplicates == gap  # sent again: exactly what was confirmed, not saved
    assert received.end_markers == 1
    assert closed.state is ReplayState.SUCCEEDED
    record_figures(
        request,
        "execution store (PostgreSQL) stopped mid-replay",
        faults_survived=1,
        artefacts=ARTEFACTS,
        recorded_at_fault=record.confirmed,
        broker_had_at_fault=len(before.unique),
        messages_lost=len(parent.message_ids - received.unique),
        duplicates=received.duplicates,
        allowed=f"progress_every {PROGRESS_EVERY} + confirm window {WINDOW}",
        seconds_from_stop_to_failure=round(failed_after, 1),
        error=error,
    )


class _StoreGoesWhenPublishReturns(RabbitMQPublisher):
    """A real publisher; ``outage`` runs once, as its first publish returns (every message
    it sent answered): the moment a shard stops and records why."""

    outage: Callable[[], None] | None = None

    def publish(
        self, queue: str, messages: Iterable[OutgoingMessage], **options: Any
    ) -> PublishOutcome:
        try:
            return super().publish(queue, messages, **options)
        finally:
            outage, self.outage = self.outage, None
            if outage is not None:
                outage()


def test_a_missing_artefact_is_reported_even_when_the_database_goes_too(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    rabbitmq_server: RabbitMQServer,
    postgres_server: PostgresServer,
) -> None:
    """Two faults at once: an artefact lost from storage stops the shard, and the execution
    store's database is gone when the failure is recorded. The error that stopped the replay
    (the artefact, exit code 3) is what is raised, not the store's failure to record it."""
    name = f"two_faults_{secrets.token_hex(3)}"
    root = tmp_path / "artefacts"
    env = {
        "FACTFLOW_HOME": str(tmp_path / "home"),
        "FACTFLOW_STORAGE_URL": root.as_uri(),
        "FACTFLOW_BROKER_URL": rabbitmq_server.url,
        "FACTFLOW_DATABASE_URL": postgres_server.create_database(name),
    }
    reset_queues(rabbitmq_server.url, [QUEUE])
    settings, parent = prepared(env, "parent-two-faults")
    lost = parent.keys[150]
    body = (root / lost).read_bytes()
    store = VanishingStore(root)
    store.vanish = lost
    publisher = _StoreGoesWhenPublishReturns(rabbitmq_server.url, window=WINDOW)
    publisher.outage = lambda: database_gone(postgres_server, name)
    with publisher, open_execution_store(settings) as executions:
        service = DetachedReplayService(
            artefacts=store, executions=executions, publisher=publisher, stale_after=STALE_SECONDS
        )
        replay = ReplayRequest.parse(
            {"source_execution_id": parent.id, "from_stage": "parse", "to_route": "enrich"}
        )
        with pytest.raises(ArtefactNotFoundError, match=lost) as raised:
            service.run(replay)
        failed = time.monotonic()
        assert raised.value.exit_code == 3
        before = consume(rabbitmq_server.url, QUEUE)
        assert len(before.unique) == 150  # everything before the lost artefact, confirmed

        postgres_server.psql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        [record] = executions.list_replays(source_execution_id=parent.id)
        assert record.state is ReplayState.RUNNING  # the failure could not be recorded
        assert record.confirmed <= len(before.unique)
        (root / lost).write_bytes(body)  # restored
        wait_for(
            "the replay's heartbeat went stale",
            lambda: time.monotonic() - failed > STALE_SECONDS + 0.5,
            timeout=STALE_SECONDS + 5,
        )
        resumed = service.resume(record.replay_id)
        after = consume(rabbitmq_server.url, QUEUE)

    assert (resumed.state, resumed.confirmed) == ("SUCCEEDED", ARTEFACTS)
    received = before + after
    assert received.unique == parent.message_ids
    assert received.duplicates == len(before.unique) - record.confirmed
    assert received.end_markers == 1
    record_figures(
        request,
        "artefact lost and execution store gone at once",
        faults_survived=2,
        artefacts=ARTEFACTS,
        error_raised=type(raised.value).__name__,
        recorded_at_fault=record.confirmed,
        broker_had_at_fault=len(before.unique),
        messages_lost=len(parent.message_ids - received.unique),
        duplicates=received.duplicates,
        allowed=f"progress_every {settings.progress_every} + confirm window {WINDOW}",
    )


def database_gone(postgres: PostgresServer, name: str) -> None:
    """No new connection to database ``name``, and its open ones dropped: it is gone."""
    postgres.psql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
    postgres.psql(
        f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
    )
