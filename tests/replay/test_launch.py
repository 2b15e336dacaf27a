"""replay_launch_tags and recovery_launch_tags: a run's tags at submission, from the store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from factflow_replay_dagster.errors import InvalidIdError, UnknownExecutionError, UnknownRouteError
from factflow_replay_dagster.executions import ExecutionStore
from factflow_replay_dagster.pipelines import sample_config
from factflow_replay_dagster.recovery import recovery_launch_tags
from factflow_replay_dagster.replay import ReplayRequest, replay_launch_tags
from factflow_replay_dagster.snapshot import ConfigSnapshot


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ExecutionStore]:
    with ExecutionStore(f"sqlite:///{tmp_path / 'executions.db'}") as opened:
        opened.create_execution("news-v1-run", ConfigSnapshot.load(sample_config("news")))
        opened.create_execution("news-v2-run", ConfigSnapshot.load(sample_config("news-v2")))
        yield opened


def request(source: str, **fields: str) -> ReplayRequest:
    return ReplayRequest.parse(
        {"source_execution_id": source, "from_stage": "parse", "to_route": "enrich", **fields}
    )


def test_replay_tags_name_the_queue_of_the_parents_own_snapshot(store: ExecutionStore) -> None:
    assert replay_launch_tags(store, request("news-v1-run")) == {
        "factflow/kind": "replay",
        "factflow/source_execution": "news-v1-run",
        "factflow/queue": "news.enrich",
        "factflow/to_route": "enrich",
        "factflow/from_stage": "parse",
    }
    # Same route name, another snapshot: another queue, as the replay itself would resolve.
    assert replay_launch_tags(store, request("news-v2-run"))["factflow/queue"] == "news.v2.enrich"


def test_a_named_replay_is_tagged_with_its_id(store: ExecutionStore) -> None:
    tags = replay_launch_tags(store, request("news-v1-run", replay_id="replay-again-1"))
    assert tags["factflow/replay_id"] == "replay-again-1"


def test_what_a_run_would_refuse_is_refused_before_it_is_queued(store: ExecutionStore) -> None:
    with pytest.raises(UnknownExecutionError, match="no-such-run"):
        replay_launch_tags(store, request("no-such-run"))
    with pytest.raises(UnknownRouteError, match="publish"):
        replay_launch_tags(store, request("news-v1-run", to_route="publish"))


def test_recovery_tags() -> None:
    assert recovery_launch_tags("news-v1-run") == {
        "factflow/kind": "recovery",
        "factflow/execution": "news-v1-run",
    }
    with pytest.raises(InvalidIdError):
        recovery_launch_tags("../etc")
