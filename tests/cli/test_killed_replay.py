"""A replay whose process is SIGKILLed does not stay RUNNING: its heartbeat stops, a resume
closes it (the replay FAILED, its Dagster run FAILURE) and finishes it, sending again at most
what was confirmed after the last saved position."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from support.worlds import World, news_world

from factflow_replay_dagster.errors import InvalidStateError
from factflow_replay_dagster.executions import ReplayState
from factflow_replay_dagster.queues.embedded import EmbeddedQueue
from factflow_replay_dagster.replay import ReplayRequest

STALE_SECONDS = 3.0
PROGRESS_EVERY = 20


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    yield from news_world({"FACTFLOW_HOME": str(tmp_path_factory.mktemp("killed-home"))})


def cli(world: World, *args: str) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        **world.env,
        "FACTFLOW_REPLAY_STALE_SECONDS": str(STALE_SECONDS),
        "FACTFLOW_PROGRESS_EVERY": str(PROGRESS_EVERY),
    }
    env.pop("DAGSTER_HOME", None)
    return subprocess.Popen(
        [sys.executable, "-m", "factflow_replay_dagster.cli", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def drain(queue: EmbeddedQueue) -> list[str]:
    import threading

    ids: list[str] = []
    stop = threading.Event()
    if queue.depth("news.enrich"):
        for delivery in queue.consume(["news.enrich"], stop=stop, prefetch=64):
            ids.append(delivery.message_id)
            delivery.ack()
            if queue.depth("news.enrich") == 0:
                stop.set()
    return ids


@pytest.mark.slow
def test_a_killed_replay_is_closed_and_resumed(world: World) -> None:
    queue = world.emptied_queue("news.enrich")
    executions = world.components.executions
    before = {r.replay_id for r in executions.list_replays()}
    args = ["execution", "replay", world.parent.id, "--from-stage", "parse", "--to-route", "enrich"]
    first = cli(world, *args, "--rate", "100", "--json")
    deadline = time.monotonic() + 120
    replay = None
    while time.monotonic() < deadline:
        new = [r for r in executions.list_replays() if r.replay_id not in before]
        if new and new[0].confirmed >= 3 * PROGRESS_EVERY:
            replay = new[0]
            break
        time.sleep(0.05)
    assert replay is not None, first.communicate(timeout=5)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)

    killed = executions.get_replay(replay.replay_id)
    assert killed.state is ReplayState.RUNNING  # nobody could say otherwise yet
    assert "pid" in str(killed.owner)

    # While its heartbeat is fresh, a resume is refused: it might still be publishing.
    request = ReplayRequest.parse(world.good_request())
    service = world.service(stale_after=STALE_SECONDS)
    with pytest.raises(InvalidStateError, match="still publishing"):
        service.plan(request, resume_replay_id=replay.replay_id)
    assert executions.get_replay(replay.replay_id).state is ReplayState.RUNNING
    # Once the heartbeat is stale, the resume closes it and finishes the replay.
    time.sleep(STALE_SECONDS + 1)
    done = cli(world, *args, "--resume", replay.replay_id, "--json")
    out, err = done.communicate(timeout=180)
    assert done.returncode == 0, err[-3000:]
    summary = json.loads(out)
    assert (summary["replay"]["state"], summary["replay"]["confirmed"]) == ("SUCCEEDED", 240)

    home = Path(world.env["FACTFLOW_HOME"]) / "dagster"
    with dg.DagsterInstance.from_config(str(home)) as instance:
        killed_run = instance.get_run_by_id(str(killed.dagster_run_id))
        assert killed_run is not None
        assert killed_run.status is dg.DagsterRunStatus.FAILURE  # not STARTED for ever
    child = executions.get_execution(str(killed.child_execution_id))
    assert child.error is None  # the kill's message went with the resume
    assert child.replay_source is not None
    assert child.replay_source.confirmed == 240

    ids = [i for i in drain(queue) if i.startswith("art-")]
    counts = Counter(ids)
    assert len(counts) == 240  # every artefact, by id
    duplicates = len(ids) - len(counts)
    # Sent again: only what was confirmed after the last saved position (at most one save's
    # worth, plus the messages in flight when it was killed).
    assert duplicates <= PROGRESS_EVERY + 1000, duplicates
    print(f"killed at {killed.confirmed} confirmed; resent {duplicates} (same ids)")
