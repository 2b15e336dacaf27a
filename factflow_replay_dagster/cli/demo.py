"""``factflow-replay demo``: run ``news``, replay ``parse`` into ``enrich``, report; and ``ui``."""

from __future__ import annotations

__all__ = ["demo", "ui"]

import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import click

from ..errors import FactflowReplayError
from ..executions.statuses import ExecutionStatus
from ._app import cli, echo_json, handle_errors, settings_from, terminal_from, verbose_from


def _step(as_json: bool, message: str) -> None:
    if not as_json:
        click.echo(message)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_context
@handle_errors
def demo(ctx: click.Context, as_json: bool) -> None:
    """Run the sample pipeline end to end, replay its parse stage into enrich, and report.

    Uses whatever the settings say: with nothing set, everything is embedded under
    ./.factflow (no servers); set FACTFLOW_* to run it on RabbitMQ, S3 and PostgreSQL.
    """
    from ..connect import connect
    from ..pipelines import sample_config
    from ..replay.models import new_replay_id
    from ..runtime import run_pipeline, run_until_finished
    from ..snapshot import ConfigSnapshot
    from ._runs import JobRunner

    settings = settings_from(ctx)
    started = time.monotonic()
    news = ConfigSnapshot.load(sample_config("news"))
    for name, value in settings.describe().items():
        _step(as_json, f"{name:>9}: {value}")
    with connect(settings) as components:
        _step(as_json, "\n1. running the news pipeline (fetch, parse -> annotate, index) ...")
        parent = run_pipeline(news, **components.runtime(), timeout=300)
        if parent.status is not ExecutionStatus.SUCCEEDED:
            raise FactflowReplayError(f"the news run ended {parent.status}: {parent.error}")
        fetches = components.executions.counter(parent.id, "fetch")
        _step(as_json, f"   execution {parent.id}: {parent.status}")

        _step(as_json, "2. replaying its stored parse artefacts into route enrich (replay_job) ...")
        runner = JobRunner(
            settings, terminal_from(ctx), verbose=verbose_from(ctx), requested_by="demo"
        )
        run_id = runner.new_run_id()
        assert run_id is not None
        replay_id = new_replay_id(run_id)
        outcome = runner.run(
            "replay_job",
            {
                "source_execution_id": parent.id,
                "from_stage": "parse",
                "to_route": "enrich",
                "reason": "demo: re-run enrich without fetching again",
            },
            run_id=run_id,
            watch_replay=None if as_json else replay_id,
        )
        terminal_from(ctx).close()
        if outcome.exit_code:
            raise FactflowReplayError(f"replay_job failed: {outcome.message}")
        record = components.executions.get_replay(replay_id)
        child_id = record.child_execution_id
        assert child_id is not None
        _step(
            as_json,
            f"   replay {replay_id}: {record.confirmed}/{record.total} confirmed, "
            f"Dagster run {outcome.run_id}",
        )

        _step(as_json, f"3. running the child execution {child_id} ...")
        child = run_until_finished(
            child_id, news.config.queues(), **components.runtime(), timeout=300
        )
        report = _report(components.executions, parent.id, child.id, fetches, settings.home)
    report["seconds"] = round(time.monotonic() - started, 1)
    report["dagster_run_id"] = outcome.run_id
    if as_json:
        echo_json(report)
    else:
        _print_report(report)
    if child.status is not ExecutionStatus.SUCCEEDED:
        raise SystemExit(1)


def _report(
    executions: Any, parent_id: str, child_id: str, fetches: int, home: Path
) -> dict[str, Any]:
    from ..executions.details import execution_details

    parent = execution_details(executions, parent_id).model_dump(mode="json")
    child = execution_details(executions, child_id).model_dump(mode="json")
    return {
        "state_folder": str(home),
        "executions": [parent, child],
        "fetch_count_after_run": fetches,
        "fetch_count_now": executions.counter(parent_id, "fetch"),
        "child_fetch_count": executions.counter(child_id, "fetch"),
    }


def _print_report(report: dict[str, Any]) -> None:
    click.echo("\nReport")
    for details in report["executions"]:
        record = details["execution"]
        click.echo(f"  execution {record['id']}  {record['status']}  ({record['origin']})")
        source = record["replay_source"]
        if source:
            click.echo(
                f"    replayed from {source['parent_execution_id']} "
                f"{source['source_route']}/{source['from_stage']} -> route "
                f"{source['to_route']} (queue {source['queue']}), "
                f"{source['confirmed']} artefacts, replay {source['replay_id']}"
            )
        for row in details["lineage"]:
            click.echo(
                f"    {row['route']}/{row['stage']:<9} {row['status']:<10} "
                f"{row['artefact_count']:>4} artefacts"
            )
    click.echo(
        f"  sources fetched: {report['fetch_count_after_run']} by the run, "
        f"{report['fetch_count_now'] - report['fetch_count_after_run']} since "
        f"(the replay fetched nothing)"
    )
    click.echo(f"  finished in {report['seconds']} s; state kept in {report['state_folder']}")
    click.echo("\nWhere to look next")
    click.echo("  factflow-replay ui                         # the Dagster UI on this state")
    child = report["executions"][1]["execution"]["id"]
    click.echo(f"  factflow-replay execution show {child}")
    click.echo("  factflow-replay execution list")


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=3000, show_default=True)
@click.pass_context
@handle_errors
def ui(ctx: click.Context, host: str, port: int) -> None:
    """Start the Dagster UI (dagster dev) on the runs and executions the CLI records."""
    from ._runs import dagster_home

    settings = settings_from(ctx)
    home = dagster_home(settings)
    # The location name of FACTFLOW_DAGSTER_LOCATION, so `--dagster-url` finds it.
    workspace = home / "workspace.yaml"
    workspace.write_text(
        "load_from:\n  - python_module:\n      module_name: factflow_replay_dagster.defs.location\n"
        f"      location_name: {settings.dagster_location}\n",
        encoding="utf-8",
    )
    dagster = shutil.which("dagster") or str(Path(sys.executable).with_name("dagster"))
    env = {**os.environ, "DAGSTER_HOME": str(home), "FACTFLOW_HOME": str(settings.home)}
    click.echo(f"DAGSTER_HOME={home}; open http://{host}:{port}", err=True)
    os.execve(  # noqa: S606 - becomes dagster dev; every argument is built right here
        dagster, [dagster, "dev", "-w", str(workspace), "-h", host, "-p", str(port)], env
    )
