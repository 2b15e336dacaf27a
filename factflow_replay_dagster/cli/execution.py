"""``factflow-replay execution show|list|register``: what is recorded, and registering more."""

from __future__ import annotations

__all__ = ["execution"]

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..executions.statuses import ExecutionStatus
from ._app import cli, echo_json, handle_errors, settings_from

if TYPE_CHECKING:
    from ..executions import ExecutionRecord


@cli.group()
def execution() -> None:
    """Inspect, register, replay, rerun and recover executions."""


def _summary(record: ExecutionRecord) -> dict[str, Any]:
    return record.model_dump(mode="json", exclude={"snapshot"})


@execution.command("show")
@click.argument("execution_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
@handle_errors
def show(ctx: click.Context, execution_id: str, as_json: bool) -> None:
    """Status, snapshot routes, lineage, provenance and children of EXECUTION_ID."""
    from ..connect import open_execution_store
    from ..executions.details import execution_details

    with open_execution_store(settings_from(ctx)) as store:
        details = execution_details(store, execution_id).model_dump(mode="json")
    if as_json:
        echo_json(details)
        return
    record = details["execution"]
    click.echo(
        f"execution {record['id']}  {record['status']}  "
        f"{record['pipeline']} v{record['pipeline_version']}  ({record['origin']})"
    )
    if record["error"]:
        click.echo(f"  error: {record['error']}")
    source = record["replay_source"]
    if source:
        click.echo(
            f"  replayed from {source['parent_execution_id']} "
            f"{source['source_route']}/{source['from_stage']} -> route {source['to_route']} "
            f"(queue {source['queue']}), {source['confirmed']}/{source['total']} confirmed, "
            f"replay {source['replay_id']}"
            + (f", reason: {source['reason']}" if source["reason"] else "")
        )
    click.echo("  routes (from its snapshot):")
    for route in details["routes"]:
        stages = ", ".join(f"{s['stage']} [{s['queue']}]" for s in route["stages"])
        forward = f" -> {route['forward_to']}" if route["forward_to"] else ""
        click.echo(f"    {route['route']}{forward}: {stages}")
    click.echo("  lineage:")
    for row in details["lineage"] or [
        {"route": "-", "stage": "-", "status": "none", "artefact_count": 0, "attempt": 0}
    ]:
        registered = (row.get("note") or {}).get("registered")
        attempt = "registered (stored elsewhere)" if registered else f"attempt {row['attempt']}"
        click.echo(
            f"    {row['route']}/{row['stage']}: {row['status']}, "
            f"{row['artefact_count']} artefacts, {attempt}"
        )
    for child in details["children"]:
        click.echo(f"  child: {child}")
    for recovery in details["recoveries"]:
        click.echo(
            f"  recovery {recovery['attempt']}: restart at {recovery['restart_route']}/"
            f"{recovery['restart_stage']} ({_recovery_state(recovery, record)})"
        )


def _recovery_state(recovery: dict[str, Any], execution: dict[str, Any]) -> str:
    """A recovery as a person reads it: PUBLISHED means its init message went out; what it
    led to is the execution's status once that attempt is the latest and finished."""
    if recovery["state"] != "PUBLISHED":
        return str(recovery["state"])
    if execution["status"] in ("SUCCEEDED", "FAILED", "NEEDS_ATTENTION"):
        return f"restarted; the execution then {execution['status']}"
    return f"restarted; the execution is {execution['status']}"


@execution.command("list")
@click.option("--status", type=click.Choice([s.value for s in ExecutionStatus]), help="Filter.")
@click.option("--pipeline", help="Filter by pipeline name.")
@click.option("--limit", default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
@handle_errors
def list_(
    ctx: click.Context, status: str | None, pipeline: str | None, limit: int, as_json: bool
) -> None:
    """Recorded executions, newest first."""
    from ..connect import open_execution_store

    with open_execution_store(settings_from(ctx)) as store:
        records = store.list_executions(
            status=ExecutionStatus(status) if status else None, pipeline=pipeline, limit=limit
        )
    if as_json:
        echo_json([_summary(r) for r in records])
        return
    for r in records:
        parent = f"  <- {r.parent_id}" if r.parent_id else ""
        click.echo(
            f"{r.id}  {r.status:<15} {r.pipeline} v{r.pipeline_version}  "
            f"{r.created_at:%Y-%m-%d %H:%M:%S}{parent}"
        )


@execution.command("register")
@click.option(
    "--snapshot",
    "snapshot_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The pipeline config the execution ran with (kept verbatim).",
)
@click.option("--id", "execution_id", help="Its id (the <execution> of its storage prefix).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
@handle_errors
def register(
    ctx: click.Context, snapshot_path: Path, execution_id: str | None, as_json: bool
) -> None:
    """Record an execution whose artefacts another deployment stored, so it can be replayed.

    Its stored stages are counted and recorded as lineage (status SUCCEEDED, noted as
    registered); stages with nothing stored get no lineage.
    """
    from ..connect import connect
    from ..ids import new_id
    from ..layout import stage_prefix
    from ..snapshot import ConfigSnapshot
    from ..storage.base import summarize

    snapshot = ConfigSnapshot.load(snapshot_path)
    execution_id = execution_id or new_id(snapshot.config.pipeline)
    with connect(settings_from(ctx)) as components:
        executions = components.executions
        executions.create_execution(
            execution_id, snapshot, origin="registered", status=ExecutionStatus.REGISTERED
        )
        found = {}
        for route, stage in snapshot.config.iter_stages():
            prefix = stage_prefix(execution_id, route.name, stage.name)
            stored = summarize(components.artefacts, prefix)
            if stored.count:
                found[f"{route.name}/{stage.name}"] = stored.count
                executions.record_stored_stage(
                    execution_id,
                    route.name,
                    stage.name,
                    count=stored.count,
                    size=stored.bytes,
                    first_key=stored.first_key,
                    last_key=stored.last_key,
                    note={"registered": True},
                    keys=components.artefacts.list_keys(prefix),  # its manifest: what is there
                )
        location = components.artefacts.location
    if as_json:
        echo_json({"execution_id": execution_id, "stored": found, "location": location})
        return
    click.echo(
        f"registered execution {execution_id} ({snapshot.config.pipeline} "
        f"v{snapshot.config.version}) in {location}"
    )
    for name, count in found.items():
        click.echo(f"  {name}: {count} artefacts")
    if not found:
        click.echo(
            f"  nothing stored yet: artefacts go under executions/{execution_id}/<route>/<stage>/"
        )
