"""``factflow-replay execution replay``: run ``replay_job`` in-process or on a webserver."""

from __future__ import annotations

__all__ = ["replay"]

import sys
import threading
from typing import Any

import click

from ..connect import connect
from ..errors import UnknownReplayError
from ..ids import new_id
from ..settings import Settings
from ._app import echo_json, handle_errors, settings_from, verbose_from
from ._dagster import JobOutcome, run_in_process, run_on_webserver
from .execution import execution


def _progress(settings: Settings, replay_id: str, done: threading.Event) -> None:
    """Draw a progress bar from the replay's saved progress until ``done``."""
    stderr = sys.stderr  # the real terminal, before a run filters sys.stderr
    with connect(settings) as components:
        bar = None
        while not done.wait(0.5):
            try:
                record = components.executions.get_replay(replay_id)
            except UnknownReplayError:
                continue
            if bar is None:
                bar = click.progressbar(
                    length=record.total, label=f"replay {replay_id}", file=stderr, show_pos=True
                )
                bar.__enter__()
            bar.update(record.confirmed - bar.pos)
        if bar is not None:
            bar.render_finish()


@execution.command("replay")
@click.argument("execution_id")
@click.option("--from-stage", required=True, help="Stage whose stored artefacts are replayed.")
@click.option("--to-route", required=True, help="Route to feed (resolved from the snapshot).")
@click.option("--source-route", help="Route holding --from-stage, if the name is ambiguous.")
@click.option("--match", help="Glob on object names, e.g. 'news-00*.json'.")
@click.option("--limit", type=click.IntRange(min=1), help="Replay at most N artefacts.")
@click.option("--rate", type=click.FloatRange(min=0, min_open=True), help="Messages per second.")
@click.option("--dry-run", is_flag=True, help="Plan and print; publish nothing.")
@click.option("--reason", help="Why: kept in the child's provenance.")
@click.option("--resume", "resume_replay_id", help="Resume this replay after its last confirm.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
@click.option("--dagster-url", help="Run on this Dagster webserver (GraphQL) instead.")
@click.option(
    "--location", default="factflow", show_default=True, help="Code location name on the webserver."
)
@click.pass_context
@handle_errors
def replay(
    ctx: click.Context,
    execution_id: str,
    from_stage: str,
    to_route: str,
    source_route: str | None,
    match: str | None,
    limit: int | None,
    rate: float | None,
    dry_run: bool,
    reason: str | None,
    resume_replay_id: str | None,
    as_json: bool,
    dagster_url: str | None,
    location: str,
) -> None:
    """Replay EXECUTION_ID's stored FROM_STAGE artefacts into TO_ROUTE as a child execution.

    Exit codes: 0 done, 2 bad input (unknown execution/stage/route/queue, bad id),
    3 missing artefacts, 4 broker failure, 130 cancelled (resume with --resume).
    """
    settings = settings_from(ctx)
    replay_id = resume_replay_id or new_id("replay")
    config: dict[str, Any] = {
        "source_execution_id": execution_id,
        "from_stage": from_stage,
        "to_route": to_route,
        "source_route": source_route,
        "match": match,
        "limit": limit,
        "rate": rate,
        "dry_run": dry_run,
        "reason": reason,
        "resume_replay_id": resume_replay_id,
        "replay_id": None if resume_replay_id else replay_id,
    }
    config = {k: v for k, v in config.items() if v is not None}
    tags = {"factflow/requested_by": "cli"}
    done = threading.Event()
    watcher = None
    if not as_json and not dry_run and sys.stderr.isatty():
        watcher = threading.Thread(target=_progress, args=(settings, replay_id, done), daemon=True)
        watcher.start()
    try:
        if dagster_url:
            outcome = run_on_webserver(
                dagster_url, "replay_job", config, location=location, tags=tags
            )
        else:
            outcome = run_in_process(
                "replay_job",
                config,
                settings=settings,
                tags=tags,
                output_nodes=(("plan_replay", "plan"),),
                verbose=verbose_from(ctx),
            )
    finally:
        done.set()
        if watcher is not None:
            watcher.join(timeout=2)
    _report(settings, outcome, replay_id, dry_run=dry_run, as_json=as_json)
    if outcome.exit_code:
        raise SystemExit(outcome.exit_code)


def _report(
    settings: Settings, outcome: JobOutcome, replay_id: str, *, dry_run: bool, as_json: bool
) -> None:
    summary: dict[str, Any] = {
        "run_id": outcome.run_id,
        "run_status": outcome.status,
        "exit_code": outcome.exit_code,
        "error": outcome.message,
    }
    plan = (outcome.outputs or {}).get("plan_replay")
    if plan is not None:
        summary["plan"] = plan.model_dump(mode="json")
    record = None
    if not dry_run:
        with connect(settings) as components:
            try:
                record = components.executions.get_replay(replay_id)
            except UnknownReplayError:
                record = None
        if record is not None:
            summary["replay"] = record.model_dump(mode="json", exclude={"request"})
            summary["child_execution_id"] = record.child_execution_id
    if as_json:
        echo_json(summary)
        return
    if outcome.exit_code and outcome.message:
        click.secho(f"error: {outcome.message}", fg="red", err=True)
    if dry_run and plan is not None:
        click.echo(
            f"dry run: would replay {plan.count} artefacts ({plan.bytes} bytes) of "
            f"{plan.source_route}/{plan.from_stage} from {plan.source_execution_id} into "
            f"route {plan.to_route}, queue {plan.queue}"
        )
        click.echo(f"  first {plan.first_key}\n  last  {plan.last_key}")
    if record is not None:
        click.echo(
            f"replay {record.replay_id}: {record.state}, {record.confirmed}/{record.total} "
            f"confirmed into queue {record.queue}; child execution "
            f"{record.child_execution_id} (Dagster run {outcome.run_id})"
        )
        if record.state in ("CANCELLED", "FAILED"):
            click.echo(
                f"  resume with: factflow-replay execution replay "
                f"{record.source_execution_id} --from-stage {record.from_stage} "
                f"--to-route {record.to_route} --resume {record.replay_id}"
            )
