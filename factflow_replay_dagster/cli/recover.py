"""``factflow-replay execution rerun`` and ``execution recover``: run their Dagster jobs."""

from __future__ import annotations

__all__ = ["recover", "rerun"]

from typing import Any

import click

from ._app import echo_json, handle_errors, settings_from, terminal_from, verbose_from
from .execution import execution


def _run(
    ctx: click.Context,
    job: str,
    op: str,
    config: dict[str, Any],
    dagster_url: str | None,
    location: str | None,
    as_json: bool,
    describe: str,
    tags: dict[str, str] | None = None,
) -> None:
    from ._runs import JobRunner

    settings = settings_from(ctx)
    runner = JobRunner(
        settings,
        terminal_from(ctx),
        verbose=verbose_from(ctx),
        dagster_url=dagster_url or settings.dagster_url,
        location=location or settings.dagster_location,
    )
    outcome = runner.run(
        job,
        {k: v for k, v in config.items() if v not in (None, False)},
        tags=tags,
        output=(op, "result"),
    )
    terminal_from(ctx).close()
    result = outcome.output
    if as_json:
        echo_json(
            {
                "run_id": outcome.run_id,
                "run_status": outcome.status,
                "exit_code": outcome.exit_code,
                "error": outcome.message,
                "result": result.model_dump(mode="json") if result is not None else None,
            }
        )
    elif outcome.exit_code:
        click.secho(f"error: {outcome.message or outcome.status}", fg="red", err=True)
    elif result is not None:
        click.echo(describe.format(r=result) + f" (Dagster run {outcome.run_id})")
    if outcome.exit_code:
        raise SystemExit(outcome.exit_code)


_URL = click.option(
    "--dagster-url",
    help="Run on this Dagster webserver (GraphQL) instead (default: FACTFLOW_DAGSTER_URL).",
)
_LOCATION = click.option(
    "--location", help="Code location name on the webserver (default: FACTFLOW_DAGSTER_LOCATION)."
)
_JSON = click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")


@execution.command("rerun")
@click.argument("execution_id")
@click.option("--stage", required=True, help="The stage to rerun (queue from the snapshot).")
@click.option("--route", help="Its route, if the stage name is ambiguous.")
@click.option("--only-this-stage", is_flag=True, help="Do not rerun the stages after it.")
@click.option("--reason", help="Why: kept in the stage's lineage.")
@_JSON
@_URL
@_LOCATION
@click.pass_context
@handle_errors
def rerun(
    ctx: click.Context,
    execution_id: str,
    stage: str,
    route: str | None,
    only_this_stage: bool,
    reason: str | None,
    as_json: bool,
    dagster_url: str | None,
    location: str | None,
) -> None:
    """Rerun STAGE of EXECUTION_ID (and what follows) from its stored input (rerun_stage_job)."""
    _run(
        ctx,
        "rerun_stage_job",
        "rerun_stage",
        {
            "execution_id": execution_id,
            "stage": stage,
            "route": route,
            "only_this_stage": only_this_stage,
            "reason": reason,
        },
        dagster_url,
        location,
        as_json,
        "rerun of {r.route}/{r.stage} of {r.execution_id}: attempt {r.attempt}, init "
        "message {r.init_message_id} on queue {r.queue}",
    )


@execution.command("recover")
@click.argument("execution_id")
@click.option("--reason", help="Why: kept with the recovery.")
@click.option(
    "--force", is_flag=True, help="Recover even if a stage of the failed attempt is still running."
)
@_JSON
@_URL
@_LOCATION
@click.pass_context
@handle_errors
def recover(
    ctx: click.Context,
    execution_id: str,
    reason: str | None,
    force: bool,
    as_json: bool,
    dagster_url: str | None,
    location: str | None,
) -> None:
    """Restart failed EXECUTION_ID from its last succeeded stage (recovery_job)."""
    from ..recovery.launch import recovery_launch_tags

    _run(
        ctx,
        "recovery_job",
        "recover_execution",
        {"execution_id": execution_id, "reason": reason, "force": force},
        dagster_url,
        location,
        as_json,
        "recovery {r.recovery} of {r.execution_id}: restart at {r.restart_route}/"
        "{r.restart_stage} (attempt {r.attempt}) from {r.input_artefacts} stored artefacts",
        tags=recovery_launch_tags(execution_id),
    )
