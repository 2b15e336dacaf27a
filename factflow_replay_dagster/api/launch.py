"""The one seam between the HTTP API and Dagster: submit, find and cancel runs.

Runs go where a launch from the UI would go, never through an executor of ours and never
inside the request:

* **the instance** (``DAGSTER_HOME``, else ``$FACTFLOW_HOME/dagster``, as the CLI): the run
  is created from the code location's snapshot and handed to the instance's run
  coordinator (``instance.submit_run``), which queues it for the daemon
  (``QueuedRunCoordinator``, Dagster's default) or launches it at once through the run
  launcher (``DefaultRunCoordinator``); what ``dagster job launch`` does. The code location
  (``factflow_replay_dagster.defs.location``, named ``FACTFLOW_DAGSTER_LOCATION``) is served
  by a code server subprocess that this process starts on first use and keeps (about 2 s
  once): Dagster's ``DefaultRunLauncher`` launches only runs of a gRPC-served location, and
  the daemon resolves a queued run's location by name in its own workspace. Cancelling asks
  the run coordinator (a queued run is dropped, a running one terminated by its launcher).
* **a webserver** (``FACTFLOW_DAGSTER_URL``): over its GraphQL, with Dagster's
  ``DagsterGraphQLClient`` (``submit_job_execution``, ``terminate_run``), as the CLI's
  ``--dagster-url`` does.

Dagster has no public API for the first path; these private pieces are used, here only,
checked on Dagster 1.13.27 (``pyproject.toml`` pins ``dagster<1.14``; re-check on upgrade):
``dagster._core.workspace.context.WorkspaceProcessContext`` (the workspace and its code
server), ``dagster._core.workspace.load_target.ModuleTarget``,
``dagster._core.definitions.selector.JobSubsetSelector``, ``DagsterInstance.create_run``
(not ``@public``; about 17 keyword arguments that Dagster renames between minor versions)
and ``DagsterInstance.submit_run``. Every Dagster failure leaves this module as a
:class:`~factflow_replay_dagster.errors.RunSubmissionError`.
"""

from __future__ import annotations

__all__ = ["GraphQLLauncher", "InstanceLauncher", "RunInfo", "RunLauncher", "open_launcher"]

import json
import logging
import threading
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from ..errors import FactflowReplayError, RunSubmissionError
from ..settings import Settings

if TYPE_CHECKING:
    import dagster as dg
    from dagster._core.workspace.context import WorkspaceProcessContext, WorkspaceRequestContext

log = logging.getLogger(__name__)

#: The code location module every deployment of the plugin loads (``defs/location.py``).
LOCATION_MODULE = "factflow_replay_dagster.defs.location"
#: Run statuses after which nothing changes.
FINISHED = frozenset({"SUCCESS", "FAILURE", "CANCELED"})


@dataclass(frozen=True)
class RunInfo:
    """A Dagster run, as far as the API needs it."""

    run_id: str
    job_name: str
    status: str

    @property
    def finished(self) -> bool:
        return self.status in FINISHED


class RunLauncher(Protocol):
    """Where the API's runs go: a Dagster instance or a webserver."""

    #: Where that is, for readiness and errors (no secret).
    target: str

    def submit(self, job_name: str, run_config: Mapping[str, Any], tags: Mapping[str, str]) -> str:
        """Submit a run of ``job_name``; returns its run id at once (nothing waits for it)."""

    def run(self, run_id: str) -> RunInfo | None:
        """The run, or None if there is no such run."""

    def find_run(self, job_name: str, tags: Mapping[str, str]) -> RunInfo | None:
        """The newest run of ``job_name`` carrying every one of ``tags``."""

    def cancel(self, run_id: str) -> None:
        """Terminate the run (a queued one is dropped); raises if Dagster refuses."""

    def check(self) -> None:
        """Raise :class:`RunSubmissionError` unless Dagster answers (readiness)."""

    def close(self) -> None:
        """Stop what this launcher started (the code server)."""


def open_launcher(settings: Settings) -> RunLauncher:
    """The launcher the settings name: a webserver by ``FACTFLOW_DAGSTER_URL``, else the
    instance. Nothing is contacted until first use."""
    if settings.dagster_url:
        return GraphQLLauncher(settings.dagster_url, location=settings.dagster_location)
    return InstanceLauncher(settings)


def _failure(what: str, exc: BaseException) -> RunSubmissionError:
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return RunSubmissionError(f"Dagster: {what} failed: {type(exc).__name__}: {first[:500]}")


class InstanceLauncher:
    """Runs through the instance's run coordinator and launcher (see the module docstring)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._lock = threading.RLock()
        self._instance: dg.DagsterInstance | None = None
        self._workspace: WorkspaceProcessContext | None = None
        self.location = settings.dagster_location
        self.target = "the Dagster instance of DAGSTER_HOME (or $FACTFLOW_HOME/dagster)"

    def instance(self) -> dg.DagsterInstance:
        with self._lock:
            if self._instance is None:
                from ..defs.instance import dagster_home, open_instance

                try:
                    self._instance = open_instance(self._settings)
                except Exception as exc:  # noqa: BLE001 - any Dagster failure is the same to a client
                    raise _failure("opening the instance", exc) from None
                self.target = f"the Dagster instance in {dagster_home(self._settings)}"
            return self._instance

    def _process_context(self) -> WorkspaceProcessContext:
        """The workspace (code location ``self.location`` served by a code server), kept."""
        with self._lock:
            if self._workspace is None:
                from dagster import __version__
                from dagster._core.workspace.context import WorkspaceProcessContext
                from dagster._core.workspace.load_target import ModuleTarget

                target = ModuleTarget(
                    module_name=LOCATION_MODULE,
                    attribute="defs",
                    working_directory=None,
                    location_name=self.location,
                )
                self._workspace = WorkspaceProcessContext(
                    self.instance(), target, version=__version__, code_server_log_level="WARNING"
                )
            return self._workspace

    def submit(self, job_name: str, run_config: Mapping[str, Any], tags: Mapping[str, str]) -> str:
        with self._lock:
            try:
                workspace = self._process_context().create_request_context()
            except FactflowReplayError:
                raise
            except Exception as exc:  # noqa: BLE001 - any Dagster failure is the same to a client
                raise _failure(f"loading code location {self.location!r}", exc) from None
            if workspace.has_code_location_error(self.location):
                error = workspace.get_code_location_error(self.location)
                raise RunSubmissionError(
                    f"Dagster: code location {self.location!r} failed to load: "
                    f"{error.message.strip() if error else 'no such location'}"
                )
            try:
                run_id = _create_and_submit(workspace, self.location, job_name, run_config, tags)
            except Exception as exc:  # noqa: BLE001
                raise _failure(f"submitting a {job_name} run", exc) from None
        log.info("submitted %s run %s", job_name, run_id)
        return run_id

    def run(self, run_id: str) -> RunInfo | None:
        try:
            record = self.instance().get_run_by_id(run_id)
        except FactflowReplayError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise _failure(f"reading run {run_id}", exc) from None
        if record is None:
            return None
        return RunInfo(record.run_id, record.job_name, record.status.value)

    def find_run(self, job_name: str, tags: Mapping[str, str]) -> RunInfo | None:
        import dagster as dg

        try:
            runs = self.instance().get_runs(
                filters=dg.RunsFilter(job_name=job_name, tags=dict(tags)), limit=1
            )
        except FactflowReplayError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise _failure("finding a run by its tags", exc) from None
        return RunInfo(runs[0].run_id, runs[0].job_name, runs[0].status.value) if runs else None

    def cancel(self, run_id: str) -> None:
        with self._lock:
            try:
                cancelled = self.instance().run_coordinator.cancel_run(run_id)
            except FactflowReplayError:
                raise
            except Exception as exc:  # noqa: BLE001
                raise _failure(f"cancelling run {run_id}", exc) from None
        if not cancelled:
            raise RunSubmissionError(f"Dagster: run {run_id} could not be terminated")

    def check(self) -> None:
        try:
            self.instance().get_runs(limit=1)
        except FactflowReplayError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise _failure("reading the run storage", exc) from None

    def close(self) -> None:
        with self._lock:
            if self._workspace is not None:
                self._workspace.__exit__(None, None, None)  # stops the code server
                self._workspace = None
            if self._instance is not None:
                self._instance.dispose()
                self._instance = None


def _create_and_submit(
    workspace: WorkspaceRequestContext,
    location_name: str,
    job_name: str,
    run_config: Mapping[str, Any],
    tags: Mapping[str, str],
) -> str:
    """``dagster job launch`` condensed (``dagster/_cli/job.py``: ``_create_run``, then
    ``instance.submit_run``): the run is made from the code location's snapshot of the job,
    its config checked against it, and handed to the run coordinator."""
    from dagster._core.definitions.selector import JobSubsetSelector

    instance = workspace.instance
    location = workspace.get_code_location(location_name)
    (repository,) = location.get_repositories().values()
    job = location.get_job(
        JobSubsetSelector(
            location_name=location_name,
            repository_name=repository.name,
            job_name=job_name,
            op_selection=None,
        )
    )
    # Validates the run config against the job, as the launchpad does.
    plan = location.get_execution_plan(
        job, dict(run_config), step_keys_to_execute=None, known_state=None, instance=instance
    ).execution_plan_snapshot
    run = instance.create_run(
        job_name=job_name,
        run_id=None,
        run_config=dict(run_config),
        resolved_op_selection=job.resolved_op_selection,
        step_keys_to_execute=plan.step_keys_to_execute,
        op_selection=None,
        status=None,
        root_run_id=None,
        parent_run_id=None,
        tags={**job.tags, **tags},
        job_snapshot=job.job_snapshot,
        execution_plan_snapshot=plan,
        parent_job_snapshot=job.parent_job_snapshot,
        remote_job_origin=job.get_remote_origin(),
        job_code_origin=job.get_python_origin(),
        asset_selection=None,
        asset_check_selection=None,
        asset_graph=repository.asset_graph,
    )
    return instance.submit_run(run.run_id, workspace).run_id


_RUN_QUERY = """
query ($runId: ID!) {
  runOrError(runId: $runId) { __typename ... on Run { runId jobName status } }
}"""
_RUNS_QUERY = """
query ($filter: RunsFilter!) {
  runsOrError(filter: $filter, limit: 1) {
    __typename ... on Runs { results { runId jobName status } }
    ... on PythonError { message }
  }
}"""


class GraphQLLauncher:
    """Runs through a Dagster webserver's GraphQL (its own coordinator and launcher)."""

    def __init__(self, url: str, *, location: str, timeout: float = 30.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise RunSubmissionError(f"FACTFLOW_DAGSTER_URL must be http(s)://host:port: {url!r}")
        self._url = url.rstrip("/")
        self._parts = parts
        self._timeout = timeout
        self.location = location
        self.target = f"the Dagster webserver at {self._url}"

    def _client(self) -> Any:
        from dagster_graphql import DagsterGraphQLClient

        return DagsterGraphQLClient(
            self._parts.hostname or "",
            port_number=self._parts.port,
            use_https=self._parts.scheme == "https",
            path_prefix=self._parts.path.rstrip("/"),
            timeout=int(self._timeout),
        )

    def _query(self, query: str, variables: Mapping[str, Any]) -> dict[str, Any]:
        body = json.dumps({"query": query, "variables": dict(variables)}).encode()
        request = urllib.request.Request(  # noqa: S310 - an http(s) URL, checked above
            f"{self._url}/graphql", data=body, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:  # noqa: S310
                answer = json.loads(response.read())
        except (OSError, ValueError) as exc:
            raise _failure(f"asking {self._url}", exc) from None
        if answer.get("errors"):
            raise RunSubmissionError(f"Dagster at {self._url}: {answer['errors'][0]['message']}")
        data: dict[str, Any] = answer["data"]
        return data

    def submit(self, job_name: str, run_config: Mapping[str, Any], tags: Mapping[str, str]) -> str:
        from dagster_graphql import DagsterGraphQLClientError

        try:
            run_id: str = self._client().submit_job_execution(
                job_name,
                repository_location_name=self.location,
                run_config=dict(run_config),
                tags=dict(tags),
            )
        except DagsterGraphQLClientError as exc:
            raise _failure(f"submitting a {job_name} run to {self._url}", exc) from None
        log.info("submitted %s run %s to %s", job_name, run_id, self._url)
        return run_id

    def run(self, run_id: str) -> RunInfo | None:
        found = self._query(_RUN_QUERY, {"runId": run_id})["runOrError"]
        if found["__typename"] != "Run":
            return None
        return RunInfo(found["runId"], found["jobName"], found["status"])

    def find_run(self, job_name: str, tags: Mapping[str, str]) -> RunInfo | None:
        runs_filter = {
            "pipelineName": job_name,
            "tags": [{"key": k, "value": v} for k, v in tags.items()],
        }
        found = self._query(_RUNS_QUERY, {"filter": runs_filter})["runsOrError"]
        if found["__typename"] != "Runs":
            raise RunSubmissionError(f"Dagster at {self._url}: {found.get('message', found)}")
        results = found["results"]
        if not results:
            return None
        return RunInfo(results[0]["runId"], results[0]["jobName"], results[0]["status"])

    def cancel(self, run_id: str) -> None:
        from dagster_graphql import DagsterGraphQLClientError

        try:
            self._client().terminate_run(run_id)
        except DagsterGraphQLClientError as exc:
            raise _failure(f"terminating run {run_id} on {self._url}", exc) from None

    def check(self) -> None:
        self._query("{ version }", {})

    def close(self) -> None:
        """Nothing to stop: the webserver is someone else's."""
