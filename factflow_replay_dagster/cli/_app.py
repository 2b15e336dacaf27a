"""The root ``factflow-replay`` group, shared options, and error-to-exit-code mapping."""

from __future__ import annotations

__all__ = ["cli", "echo_json", "handle_errors", "main", "settings_from", "verbose_from"]

import functools
import json
import logging
import sys
import warnings
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

import click

from ..errors import EXIT_FAILURE, FactflowReplayError
from ..settings import Settings

P = ParamSpec("P")
R = TypeVar("R")


def handle_errors(function: Callable[P, R]) -> Callable[P, R]:
    """Turn a :class:`FactflowReplayError` into its message on stderr and its exit code."""

    @functools.wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return function(*args, **kwargs)
        except FactflowReplayError as exc:
            click.secho(f"error: {exc}", fg="red", err=True)
            sys.exit(exc.exit_code)

    return wrapper


def settings_from(ctx: click.Context) -> Settings:
    settings: Settings = ctx.find_object(dict)["settings"]  # type: ignore[index]
    return settings


def verbose_from(ctx: click.Context) -> bool:
    return bool(ctx.find_object(dict).get("verbose"))  # type: ignore[union-attr]


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.version_option(package_name="factflow-replay-dagster")
@click.pass_context
def cli(ctx: click.Context, verbose: int) -> None:
    """Replay stored factflow artefacts into queues and recover failed executions.

    Configuration comes from FACTFLOW_* environment variables (see the README); with none
    set, everything runs embedded under ./.factflow.
    """
    if verbose < 2:  # Dagster warns about its own beta parameters; not the user's concern
        warnings.filterwarnings("ignore", message="Parameter `owners`")
    level = logging.WARNING - 10 * verbose
    logging.basicConfig(
        level=max(level, logging.DEBUG),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if verbose < 2:
        logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        settings = Settings.from_env()
    except FactflowReplayError as exc:
        click.secho(f"error: {exc}", fg="red", err=True)
        sys.exit(exc.exit_code)
    ctx.ensure_object(dict).update(settings=settings, verbose=verbose)


def main() -> None:
    """Console-script entry point."""
    try:
        cli(prog_name="factflow-replay")
    except KeyboardInterrupt:
        sys.exit(EXIT_FAILURE)
