"""The one seam between the command line and Dagster: how a command runs a job.

Replay, rerun and recovery run as Dagster runs, so the UI shows them. This module owns every
part of that: the instance runs are recorded in (the one ``factflow-replay ui`` shows), run
ids (made here before a run starts, so the replay a run publishes is known from the start:
:func:`~factflow_replay_dagster.replay.new_replay_id`), exit codes (from the error the run
raised, not from its log), Dagster's console (its logger's level, set through the
definitions' logger config) and progress (the op's ``progress`` resource feeds the bar).
Dagster is imported only when a job runs, so other commands start fast.
"""

from __future__ import annotations

__all__ = ["JobOutcome", "JobRunner", "cli_instance", "dagster_home"]

import contextlib
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..errors import (
    EXIT_BAD_INPUT,
    EXIT_CANCELLED,
    EXIT_FAILURE,
    FactflowReplayError,
    InvalidInputError,
)
from ..run_tags import REQUESTED_BY
from ..settings import Settings
from ._terminal import Terminal

if TYPE_CHECKING:
    import dagster as dg

    from ..replay import ReplayProgress

#: Dagster's console level per ``-v``: its own DEBUG/INFO lines stay in the run's event log.
_CONSOLE_LEVELS = ("WARNING", "INFO", "DEBUG")
#: Terminal run states on a webserver.
_FINISHED = ("SUCCESS", "FAILURE", "CANCELED")


def dagster_home(settings: Settings) -> Path:
    """The Dagster home of CLI runs (see :mod:`factflow_replay_dagster.defs.instance`)."""
    from ..defs.instance import dagster_home as home

    return home(settings)


def cli_instance(settings: Settings) -> dg.DagsterInstance:
    """The instance CLI runs are recorded in; ``factflow-replay ui`` shows the same one."""
    from ..defs.instance import open_instance

    return open_instance(settings)


@dataclass(frozen=True)
class JobOutcome:
    """How a job run ended, with the exit code the command should use."""

    run_id: str
    status: str
    exit_code: int
    message: str | None = None
    #: The value of the output the caller asked for, when the run produced it.
    output: Any = None


class JobRunner:
    """Runs the plugin's jobs for one command: in-process, or on a webserver by URL."""

    def __init__(
        self,
        settings: Settings,
        terminal: Terminal,
        *,
        verbose: int = 0,
        dagster_url: str | None = None,
        location: str | None = None,
        requested_by: str = "cli",
    ) -> None:
        self.settings = settings
        self.requested_by = requested_by
        self.terminal = terminal
        self.verbose = verbose
        self.dagster_url = dagster_url
        self.location = location or settings.dagster_location

    def new_run_id(self) -> str | None:
        """The id the next in-process run will have (None on a webserver: it assigns them)."""
        if self.dagster_url:
            return None
        from dagster._core.utils import make_new_run_id

        return make_new_run_id()

    def run(
        self,
        job_name: str,
        run_config: Mapping[str, Any],
        *,
        run_id: str | None = None,
        tags: Mapping[str, str] | None = None,
        output: tuple[str, str] | None = None,
        watch_replay: str | None = None,
    ) -> JobOutcome:
        """Run ``job_name`` to its end and say how it ended.

        ``tags`` are the run's tags from its submission on (on a webserver, what its run
        queue's limits see: :func:`~factflow_replay_dagster.replay.replay_launch_tags`);
        ``output`` names an ``(op, output)`` whose value to return; ``watch_replay`` names
        the replay whose progress the terminal's bar follows.
        """
        config = {k: v for k, v in run_config.items() if v is not None}
        tags = {**(tags or {}), REQUESTED_BY: self.requested_by}
        if self.dagster_url:
            return self._on_webserver(job_name, config, tags, watch_replay)
        return self._in_process(job_name, config, tags, run_id, output, watch_replay)

    # -- in this process ---------------------------------------------------------------------

    def _in_process(
        self,
        job_name: str,
        config: dict[str, Any],
        tags: dict[str, str],
        run_id: str | None,
        output: tuple[str, str] | None,
        watch_replay: str | None,
    ) -> JobOutcome:
        import dagster as dg

        from ..defs import build_job_definitions
        from ..defs.progress import ProgressCallback

        level = _CONSOLE_LEVELS[min(self.verbose, len(_CONSOLE_LEVELS) - 1)]
        defs = build_job_definitions(self.settings, console_level=level)
        job = defs.resolve_job_def(job_name)
        run_id = run_id or self.new_run_id()
        assert run_id is not None
        progress = ProgressCallback(self._progress) if watch_replay else None
        error: BaseException | None = None
        result = None
        with cli_instance(self.settings) as instance, self._console():
            try:
                result = job.execute_in_process(
                    run_config=config,
                    instance=instance,
                    tags=tags,
                    run_id=run_id,
                    raise_on_error=True,
                    resources={"progress": progress} if progress is not None else None,
                )
            except (Exception, dg.DagsterExecutionInterruptedError) as exc:  # noqa: BLE001 - mapped below
                error = exc
            record = instance.get_run_by_id(run_id)
            status = record.status.value if record is not None else "NOT_STARTED"
        if error is not None:
            code, message = _exit_code(error)
            return JobOutcome(run_id, status, code, message)
        value = None
        if output is not None and result is not None:
            node, name = output
            with contextlib.suppress(dg.DagsterInvariantViolationError):
                value = result.output_for_node(node, name)
        return JobOutcome(run_id, status, 0, output=value)

    @contextlib.contextmanager
    def _console(self) -> Iterator[None]:
        """While the run runs, whole lines written to stderr go above the bar."""
        with contextlib.redirect_stderr(self.terminal.stream):
            try:
                yield
            finally:
                self.terminal.stream.flush()

    def _progress(self, update: ReplayProgress) -> None:
        blocked = update.broker_blocked
        self.terminal.progress(
            f"replay {update.replay_id}",
            update.confirmed,
            update.total,
            update.rate,
            note=None if blocked is None else f"broker blocked: {blocked}, waiting",
        )

    # -- on a webserver ----------------------------------------------------------------------

    def _on_webserver(
        self,
        job_name: str,
        config: dict[str, Any],
        tags: dict[str, str],
        watch_replay: str | None,
        *,
        timeout: float = 24 * 3600.0,
    ) -> JobOutcome:
        """Submit over GraphQL and wait; the bar follows the replay's saved progress."""
        from dagster_graphql import DagsterGraphQLClient, DagsterGraphQLClientError

        url = self.dagster_url or ""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidInputError(f"--dagster-url must be http(s)://host:port, not {url!r}")
        client = DagsterGraphQLClient(
            parts.hostname, port_number=parts.port, use_https=parts.scheme == "https"
        )
        try:
            run_id = client.submit_job_execution(
                job_name, repository_location_name=self.location, run_config=config, tags=tags
            )
            replay_id = watch_replay or None
            deadline = time.monotonic() + timeout
            while (status := client.get_run_status(run_id).value) not in _FINISHED:
                if time.monotonic() > deadline:
                    raise FactflowReplayError(f"run {run_id} still {status} after {timeout} s")
                if replay_id is not None:
                    self._saved_progress(replay_id)
                time.sleep(0.5)
        except DagsterGraphQLClientError as exc:
            raise FactflowReplayError(
                f"Dagster webserver at {url} refused the run: {exc}"
            ) from None
        codes = {"SUCCESS": 0, "CANCELED": EXIT_CANCELLED}
        return JobOutcome(run_id, status, codes.get(status, EXIT_FAILURE))

    def _saved_progress(self, replay_id: str) -> None:
        from ..connect import open_execution_store
        from ..errors import UnknownReplayError

        with open_execution_store(self.settings) as store:
            try:
                record = store.get_replay(replay_id)
            except UnknownReplayError:
                return
        self.terminal.progress(f"replay {replay_id}", record.confirmed, record.total, 0.0)


def _exit_code(error: BaseException) -> tuple[int, str]:
    """The exit code and message of the error a run raised: the package's error inside it
    (every op turns it into a ``dagster.Failure`` raised from it) decides."""
    import dagster as dg

    if isinstance(error, dg.DagsterExecutionInterruptedError):
        return EXIT_CANCELLED, "the run was cancelled"
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, FactflowReplayError):
            return cause.exit_code, str(cause)
        cause = cause.__cause__
    if isinstance(error, dg.DagsterInvalidConfigError):
        return EXIT_BAD_INPUT, str(error)
    if isinstance(error, dg.Failure):
        return EXIT_FAILURE, error.description or str(error)
    return EXIT_FAILURE, f"{type(error).__name__}: {error}"
