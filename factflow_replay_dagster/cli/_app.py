"""The root ``factflow-replay`` group, shared options, and error-to-exit-code mapping.

Commands import what they need when they run: ``--help`` and the commands that only read
the execution store never import Dagster, storage clients or the broker's library.
"""

from __future__ import annotations

__all__ = [
    "cli",
    "echo_json",
    "handle_errors",
    "main",
    "request_option",
    "settings_from",
    "terminal_from",
    "verbose_from",
]

import functools
import json
import logging
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import click

from ..errors import EXIT_FAILURE, FactflowReplayError
from ._terminal import Terminal

if TYPE_CHECKING:
    from ..settings import Settings

P = ParamSpec("P")
R = TypeVar("R")
F = TypeVar("F", bound=Callable[..., Any])


def handle_errors(function: Callable[P, R]) -> Callable[P, R]:
    """Turn a :class:`FactflowReplayError` into its message on stderr and its exit code."""

    @functools.wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return function(*args, **kwargs)
        except FactflowReplayError as exc:
            context = click.get_current_context(silent=True)
            if context is not None:
                terminal_from(context).close()
            click.secho(f"error: {exc}", fg="red", err=True)
            sys.exit(exc.exit_code)

    return wrapper


def _state(ctx: click.Context) -> dict[str, Any]:
    state: dict[str, Any] = ctx.ensure_object(dict)
    return state


def settings_from(ctx: click.Context) -> Settings:
    """The settings, read from the environment once, when a command first needs them."""
    from ..settings import Settings

    state = _state(ctx)
    if "settings" not in state:
        state["settings"] = Settings.from_env()
    settings: Settings = state["settings"]
    return settings


def terminal_from(ctx: click.Context) -> Terminal:
    """The command's stderr: log lines above a progress bar (see :mod:`._terminal`)."""
    state = _state(ctx)
    if "terminal" not in state:
        state["terminal"] = Terminal(sys.stderr)
    terminal: Terminal = state["terminal"]
    return terminal


def verbose_from(ctx: click.Context) -> int:
    return int(_state(ctx).get("verbose", 0))


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


def request_option(name: str, *declarations: str, **options: Any) -> Callable[[F], F]:
    """A click option for the replay request's field ``name``, with its help text from
    ``ReplayRequest`` (the one schema: the Dagster run config and the HTTP API use it too)."""
    from ..replay.models import ReplayRequest

    flag = f"--{name.replace('_', '-')}"
    help_text = ReplayRequest.model_fields[name].description
    return click.option(*(declarations or (flag,)), name, help=help_text, **options)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.version_option(package_name="factflow-replay-dagster")
@click.pass_context
def cli(ctx: click.Context, verbose: int) -> None:
    """Replay stored factflow artefacts into queues and recover failed executions.

    Configuration comes from FACTFLOW_* environment variables (see the README); with none
    set, everything runs embedded under ./.factflow.
    """
    _state(ctx)["verbose"] = verbose
    logging.basicConfig(
        level=max(logging.WARNING - 10 * verbose, logging.DEBUG),
        stream=terminal_from(ctx).stream,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    # Set either way: an earlier invocation in the same process may have quietened them.
    debug = verbose >= 2
    logging.getLogger("alembic").setLevel(logging.NOTSET if debug else logging.WARNING)
    # pika reports each failed connection attempt at ERROR; ours retry and then say it
    # once, clearly (BrokerConnectionError), so its own lines are only for -vv.
    logging.getLogger("pika").setLevel(logging.NOTSET if debug else logging.CRITICAL)


def main() -> None:
    """Console-script entry point."""
    try:
        cli(prog_name="factflow-replay")
    except KeyboardInterrupt:
        sys.exit(EXIT_FAILURE)
