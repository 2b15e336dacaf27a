"""``factflow-replay pipeline run`` and ``factflow-replay worker``: the reference runtime."""

from __future__ import annotations

__all__ = ["pipeline", "worker"]

import threading
from pathlib import Path

import click

from ._app import cli, echo_json, handle_errors, settings_from

CONFIG = click.Path(exists=True, dir_okay=False, path_type=Path)


@cli.group()
def pipeline() -> None:
    """Run pipelines with the reference runtime."""


@pipeline.command("run")
@click.argument("config", type=CONFIG)
@click.option("--execution-id", help="Id of the new execution (default: generated).")
@click.option("--timeout", default=600.0, show_default=True, help="Seconds to wait for the end.")
@click.option("--no-wait", is_flag=True, help="Start the execution and leave it to workers.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
@handle_errors
def run(
    ctx: click.Context,
    config: Path,
    execution_id: str | None,
    timeout: float,
    no_wait: bool,
    as_json: bool,
) -> None:
    """Start an execution of CONFIG (recorded with its snapshot) and run it to completion."""
    from ..connect import connect
    from ..executions.statuses import ExecutionStatus
    from ..runtime import run_until_finished, start_execution
    from ..runtime.runner import stop_on_signals
    from ..snapshot import ConfigSnapshot

    snapshot = ConfigSnapshot.load(config)
    stop = threading.Event()
    with connect(settings_from(ctx)) as components, stop_on_signals(stop):
        record = start_execution(
            snapshot,
            executions=components.executions,
            publisher=components.publisher,
            execution_id=execution_id,
        )
        if not no_wait:
            record = run_until_finished(
                record.id,
                snapshot.config.queues(),
                **components.runtime(),
                timeout=timeout,
                stop=stop,
            )
        lineage = components.executions.lineage(record.id)
    if as_json:
        echo_json(
            {
                "execution": record.model_dump(mode="json", exclude={"snapshot"}),
                "lineage": [row.model_dump(mode="json") for row in lineage],
            }
        )
    else:
        click.echo(f"execution {record.id}: {record.status}")
        for row in lineage:
            click.echo(f"  {row.route}/{row.stage}: {row.status} ({row.artefact_count} artefacts)")
    if record.status not in (ExecutionStatus.SUCCEEDED, ExecutionStatus.PENDING):
        raise SystemExit(1)


@cli.command()
@click.argument("configs", type=CONFIG, nargs=-1, required=True)
@click.option("--prefetch", default=16, show_default=True, help="Unacknowledged messages held.")
@click.pass_context
@handle_errors
def worker(ctx: click.Context, configs: tuple[Path, ...], prefetch: int) -> None:
    """Consume the queues of CONFIGS and run their stages until SIGINT/SIGTERM."""
    from ..connect import connect
    from ..runtime import Worker
    from ..runtime.runner import stop_on_signals
    from ..snapshot import ConfigSnapshot

    queues = [q for path in configs for q in ConfigSnapshot.load(path).config.queues()]
    stop = threading.Event()
    with connect(settings_from(ctx)) as components, stop_on_signals(stop):
        Worker(queues, **components.runtime(), prefetch=prefetch).run(stop)
