"""``factflow-replay execution replay``: run ``replay_job`` in-process or on a webserver.

Its options are the replay request's fields (help texts included), like the Dagster run
config and the HTTP API body.
"""

from __future__ import annotations

__all__ = ["replay"]

from typing import TYPE_CHECKING, Any

import click

from ..replay.models import MAX_SHARDS, RESUME_DESCRIPTION, new_replay_id
from ._app import (
    echo_json,
    handle_errors,
    request_option,
    settings_from,
    terminal_from,
    verbose_from,
)
from .execution import execution

if TYPE_CHECKING:
    from ..executions import ReplayRecord
    from ..settings import Settings
    from ._runs import JobOutcome


@execution.command("replay")
@click.argument("execution_id")
@request_option("from_stage", required=True)
@request_option("to_route", required=True)
@request_option("source_route")
@request_option("match")
@request_option("limit", type=click.IntRange(min=1))
@request_option("rate", type=click.FloatRange(min=0, min_open=True))
@request_option("dry_run", is_flag=True)
@request_option("reason")
@request_option("child_execution_id")
@request_option("replay_id")
@request_option("shards", type=click.IntRange(1, MAX_SHARDS), default=1, show_default=True)
@click.option("--resume", "resume_replay_id", help=RESUME_DESCRIPTION)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
@click.option(
    "--dagster-url",
    help="Run on this Dagster webserver (GraphQL) instead (default: FACTFLOW_DAGSTER_URL).",
)
@click.option(
    "--location", help="Code location name on the webserver (default: FACTFLOW_DAGSTER_LOCATION)."
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
    child_execution_id: str | None,
    replay_id: str | None,
    shards: int,
    resume_replay_id: str | None,
    as_json: bool,
    dagster_url: str | None,
    location: str | None,
) -> None:
    """Replay EXECUTION_ID's stored FROM_STAGE artefacts into TO_ROUTE as a child execution.

    Exit codes: 0 done, 2 bad input (unknown execution/stage/route/queue, bad id),
    3 missing artefacts, 4 broker failure, 130 cancelled (resume with --resume).
    """
    from ._runs import JobRunner

    settings = settings_from(ctx)
    terminal = terminal_from(ctx)
    runner = JobRunner(
        settings,
        terminal,
        verbose=verbose_from(ctx),
        dagster_url=dagster_url or settings.dagster_url,
        location=location or settings.dagster_location,
    )
    run_id = runner.new_run_id()
    # The replay a run publishes is named after it, unless named (a resume keeps its name).
    replay_id = resume_replay_id or replay_id or (new_replay_id(run_id) if run_id else None)
    config: dict[str, Any] = {
        "source_execution_id": execution_id,
        "from_stage": from_stage,
        "to_route": to_route,
        "source_route": source_route,
        "match": match,
        "limit": limit,
        "rate": rate,
        "dry_run": dry_run or None,
        "reason": reason,
        "child_execution_id": child_execution_id,
        "replay_id": None if resume_replay_id else replay_id,
        "shards": shards if shards > 1 else None,
        "resume_replay_id": resume_replay_id,
    }
    outcome = runner.run(
        "replay_job",
        config,
        run_id=run_id,
        tags=_launch_tags(settings, config, resume_replay_id or replay_id),
        output=("plan_replay", "plan"),
        watch_replay=None if (dry_run or as_json) else replay_id,
    )
    if replay_id is None:  # on a webserver: named after the run it assigned
        replay_id = new_replay_id(outcome.run_id)
    terminal.close()
    _report(settings, outcome, replay_id, dry_run=dry_run, as_json=as_json)
    if outcome.exit_code:
        raise SystemExit(outcome.exit_code)


def _launch_tags(
    settings: Settings, config: dict[str, Any], replay_id: str | None
) -> dict[str, str]:
    """The run's tags from its submission on, which is all a run queue's limits see (target
    queue, source execution). Resolving them refuses a bad request (exit 2) before a run
    exists."""
    from ..connect import open_execution_store
    from ..replay import ReplayRequest, replay_launch_tags

    fields = {k: v for k, v in config.items() if v is not None and k != "resume_replay_id"}
    request = ReplayRequest.parse({**fields, "replay_id": replay_id})
    with open_execution_store(settings) as store:
        return replay_launch_tags(store, request)


def _record(settings: Settings, replay_id: str, *, failed: bool) -> ReplayRecord | None:
    """The replay as the store has it now; None if there is none or, after a run that
    failed, if the store cannot be read (it may be why the run failed: its error stands)."""
    from ..connect import open_execution_store
    from ..errors import ExecutionStoreError, UnknownReplayError

    try:
        with open_execution_store(settings) as store:
            return store.get_replay(replay_id)
    except UnknownReplayError:
        return None
    except ExecutionStoreError:
        if not failed:
            raise
        return None


def _report(
    settings: Settings, outcome: JobOutcome, replay_id: str, *, dry_run: bool, as_json: bool
) -> None:
    summary: dict[str, Any] = {
        "run_id": outcome.run_id,
        "run_status": outcome.status,
        "exit_code": outcome.exit_code,
        "error": outcome.message,
    }
    plan = outcome.output
    if plan is not None:
        summary["plan"] = plan.model_dump(mode="json")
    record = None if dry_run else _record(settings, replay_id, failed=bool(outcome.exit_code))
    if record is not None and record.dagster_run_id != outcome.run_id:
        record = None  # refused before it started: the replay is as another run left it
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
        click.echo(f"  completeness checked by: {plan.completeness}")
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
