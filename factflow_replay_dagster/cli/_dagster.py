"""Run this plugin's Dagster jobs from the CLI: in-process by default, or on a webserver."""

from __future__ import annotations

__all__ = ["JobOutcome", "cli_instance", "dagster_home", "run_in_process", "run_on_webserver"]

import contextlib
import io
import os
import re
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

import dagster as dg

from ..errors import EXIT_CANCELLED, EXIT_FAILURE, FactflowReplayError, InvalidInputError
from ..settings import Settings


def dagster_home(settings: Settings) -> Path:
    """``$DAGSTER_HOME`` if set, else ``<FACTFLOW_HOME>/dagster`` (made with our dagster.yaml)."""
    if os.environ.get("DAGSTER_HOME"):
        return Path(os.environ["DAGSTER_HOME"])
    home = settings.home / "dagster"
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        template = resources.files("factflow_replay_dagster").joinpath("dagster_instance.yaml")
        config.write_text(template.read_text(encoding="utf-8"), encoding="utf-8")
    return home


def cli_instance(settings: Settings) -> dg.DagsterInstance:
    """The instance CLI runs are recorded in; ``factflow-replay ui`` shows the same one."""
    return dg.DagsterInstance.from_config(str(dagster_home(settings)))


@dataclass(frozen=True)
class JobOutcome:
    """How a job run ended, with the exit code the CLI should use."""

    run_id: str
    status: str
    exit_code: int
    message: str | None = None
    outputs: Mapping[str, Any] | None = None


def _failure_exit_code(result: dg.ExecuteInProcessResult) -> tuple[int, str | None]:
    for event in result.all_events:
        if not event.is_step_failure:
            continue
        data = event.step_failure_data
        failure = data.user_failure_data
        code = EXIT_FAILURE
        if failure is not None and "exit_code" in failure.metadata:
            code = int(failure.metadata["exit_code"].value)  # type: ignore[arg-type]
        message = failure.description if failure is not None else None
        if message is None and data.error is not None:
            message = data.error.message.strip()
        return code, message
    return EXIT_FAILURE, None


class _WarningsOnly(io.TextIOBase):
    """A stderr that passes Dagster console lines of WARNING only; everything else as is.

    Dagster's console logger follows the instance's level, which also decides what the event
    log keeps; filtering the terminal instead keeps the UI's run logs complete.
    """

    _HEADER = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4} - dagster - (\w+) - ")

    def __init__(self, target: TextIO) -> None:
        self._target = target
        self._pending = ""
        self._show = True

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._pending += text
        *lines, self._pending = self._pending.split("\n")
        for line in lines:
            match = self._HEADER.match(line)
            if match is not None:
                self._show = match.group(1) == "WARNING"
            elif line.startswith("20") and " - dagster - " in line:
                self._show = False
            if self._show:
                self._target.write(line + "\n")
        return len(text)

    def flush(self) -> None:
        self._target.flush()


@contextlib.contextmanager
def _dagster_console_warnings_only() -> Iterator[None]:
    original = sys.stderr
    sys.stderr = _WarningsOnly(original)
    try:
        yield
    finally:
        sys.stderr = original


def _has_output(result: dg.ExecuteInProcessResult, node: str, name: str) -> bool:
    return any(
        event.is_successful_output
        and event.node_handle is not None
        and str(event.node_handle) == node
        and event.step_output_data.output_name == name
        for event in result.all_node_events
    )


def run_in_process(
    job_name: str,
    run_config: Mapping[str, Any],
    *,
    settings: Settings,
    tags: Mapping[str, str] | None = None,
    output_nodes: tuple[tuple[str, str], ...] | None = None,
    verbose: bool = False,
) -> JobOutcome:
    """Run ``job_name`` here, recorded in :func:`cli_instance` (visible in the UI).

    ``output_nodes`` names ``(op, output)`` pairs whose values to return when they exist.
    """
    from ..definitions import build_definitions

    job = build_definitions(settings).resolve_job_def(job_name)
    console = contextlib.nullcontext() if verbose else _dagster_console_warnings_only()
    with cli_instance(settings) as instance, console:
        result = job.execute_in_process(
            run_config=dict(run_config),
            instance=instance,
            tags=dict(tags or {}),
            raise_on_error=False,
        )
        status = instance.get_run_by_id(result.run_id)
        state = status.status.value if status is not None else "UNKNOWN"
    if result.success:
        outputs = {
            node: result.output_for_node(node, name)
            for node, name in output_nodes or ()
            if _has_output(result, node, name)
        }
        return JobOutcome(result.run_id, state, 0, outputs=outputs)
    if state == "CANCELED":
        return JobOutcome(result.run_id, state, EXIT_CANCELLED, "the run was cancelled")
    code, message = _failure_exit_code(result)
    return JobOutcome(result.run_id, state, code, message)


def run_on_webserver(
    url: str,
    job_name: str,
    run_config: Mapping[str, Any],
    *,
    location: str,
    tags: Mapping[str, str] | None = None,
    timeout: float = 3600.0,
) -> JobOutcome:
    """Submit over GraphQL to a running webserver and wait for the run to finish."""
    from dagster_graphql import DagsterGraphQLClient, DagsterGraphQLClientError

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInputError(f"--dagster-url must be http(s)://host:port, not {url!r}")
    client = DagsterGraphQLClient(
        parts.hostname, port_number=parts.port, use_https=parts.scheme == "https"
    )
    try:
        run_id = client.submit_job_execution(
            job_name,
            repository_location_name=location,
            run_config=dict(run_config),
            tags=dict(tags or {}),
        )
        deadline = time.monotonic() + timeout
        while True:
            status = client.get_run_status(run_id)
            if status.value in ("SUCCESS", "FAILURE", "CANCELED"):
                break
            if time.monotonic() > deadline:
                raise FactflowReplayError(f"run {run_id} still {status.value} after {timeout} s")
            time.sleep(0.5)
    except DagsterGraphQLClientError as exc:
        raise FactflowReplayError(f"Dagster webserver at {url} refused the run: {exc}") from None
    codes = {"SUCCESS": 0, "CANCELED": EXIT_CANCELLED}
    return JobOutcome(run_id, status.value, codes.get(status.value, EXIT_FAILURE))
