"""The worker's caches forget old executions: a long-lived worker's memory does not grow."""

from __future__ import annotations

from factflow_replay_dagster.runtime import worker


def test_recent_keeps_only_the_newest_entries(monkeypatch) -> None:
    monkeypatch.setattr(worker, "_CACHE", 3)
    recent: worker._Recent[str, int] = worker._Recent()
    for n in range(10):
        recent[f"execution-{n}"] = n
    recent["execution-7"] = 7  # touched again: becomes the newest
    assert list(recent) == ["execution-8", "execution-9", "execution-7"]
