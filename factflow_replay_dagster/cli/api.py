"""``factflow-replay api``: serve the HTTP API (imported only when the command runs)."""

from __future__ import annotations

__all__ = ["api"]

import click

from ._app import cli, handle_errors, settings_from, verbose_from


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535))
@click.pass_context
@handle_errors
def api(ctx: click.Context, host: str, port: int) -> None:
    """Serve the HTTP API: replays, reruns and recoveries as Dagster runs.

    Bearer tokens come from FACTFLOW_API_TOKENS (comma-separated); without one it serves on
    a loopback address only. Runs go to the Dagster instance (DAGSTER_HOME), or to the
    webserver of FACTFLOW_DAGSTER_URL.
    """
    from ..api.server import serve

    serve(settings_from(ctx), host=host, port=port, verbose=verbose_from(ctx))
