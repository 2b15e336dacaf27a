"""The demo, unchanged, on RabbitMQ + SeaweedFS + PostgreSQL when the settings point there."""

from __future__ import annotations

import json

from click.testing import CliRunner

from factflow_replay_dagster.cli import cli


def test_the_demo_runs_on_servers(servers: dict[str, str], monkeypatch) -> None:
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    result = CliRunner().invoke(cli, ["demo", "--json"], env=servers, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    parent, child = report["executions"]
    assert parent["execution"]["status"] == child["execution"]["status"] == "SUCCEEDED"
    assert [row["artefact_count"] for row in child["lineage"]] == [240, 240]
    assert child["execution"]["replay_source"]["queue"] == "news.enrich"
    assert report["fetch_count_now"] == report["fetch_count_after_run"] == 240
    assert report["child_fetch_count"] == 0
    assert "guest:guest" not in result.output  # the broker URL's password is redacted
