"""What the jobs share: opening the core components from resources, tags, interrupts."""

from __future__ import annotations

__all__ = [
    "TAG_PREFIX",
    "add_run_tags",
    "as_dagster_failure",
    "config_field",
    "console_loggers",
    "interrupted",
    "interruptible",
    "mark_canceling",
    "opened",
    "requested_by",
]

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

import dagster as dg
from pydantic import BaseModel, Field

from ...connect import Components
from ...errors import (
    BrokerAccessError,
    BrokerTLSError,
    FactflowReplayError,
    QueueError,
    QueueNotFoundError,
    StorageError,
)
from ...run_tags import TAG_PREFIX
from ..resources import ArtefactStoreResource, ExecutionStoreResource, QueueResource


def opened(
    artefacts: ArtefactStoreResource, executions: ExecutionStoreResource, queue: QueueResource
) -> Components:
    """The core components behind the resources; use it in a ``with`` block."""
    return Components(
        artefacts=artefacts.open(),
        executions=executions.open(),
        publisher_factory=queue.open_publisher,
        consumer_factory=queue.open_consumer,
    )


def config_field(model: type[BaseModel], name: str) -> Any:
    """A run-config field with the default and help text of the core model's ``name``: the
    core's requests are the one schema, the launchpad shows their texts."""
    info = model.model_fields[name]
    return Field(default=info.default, description=info.description)


def console_loggers(level: str | None) -> dict[str, Any] | None:
    """The run config of Dagster's console logger at ``level`` (None: Dagster's default).

    Jobs take one flat config through a config mapping, which leaves no room for a
    ``loggers`` section in the run config; the mapping adds it instead, so a job built with a
    level (the command line's) logs to the console at that level while the event log, which
    the UI shows, keeps everything.
    """
    if level is None:
        return None
    return {"console": {"config": {"log_level": level}}}


def requested_by(context: dg.OpExecutionContext) -> str:
    """Who asked for this run, the one rule for every job: the ``factflow/requested_by`` tag
    (the CLI, the HTTP API, the demo), else the sensor that requested it (its name), else
    ``dagster`` (a launch from the UI)."""
    tags = context.run.tags
    return tags.get(f"{TAG_PREFIX}requested_by") or tags.get("dagster/sensor_name") or "dagster"


def add_run_tags(context: dg.OpExecutionContext, tags: Mapping[str, str | None]) -> None:
    """Add ``factflow/...`` tags to the running run, so runs are searchable in the UI (those
    its submitter set already, as the CLI and the API do, are not written again)."""
    current = context.run.tags
    missing = {
        f"{TAG_PREFIX}{k}": v for k, v in tags.items() if v and current.get(f"{TAG_PREFIX}{k}") != v
    }
    if missing:
        context.instance.add_run_tags(context.run_id, missing)


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """Turn a run termination (SIGINT) into a flag polled at message boundaries.

    Inside the block :func:`interrupted` says whether termination was asked for; the caller
    stops cleanly and then raises :class:`dagster.DagsterExecutionInterruptedError` so the
    run ends CANCELED. Uses Dagster's own interrupt capture (private API, checked on 1.13).
    """
    from dagster._utils.interrupts import capture_interrupts

    with capture_interrupts():
        yield None


def interrupted() -> bool:
    from dagster._utils.interrupts import check_captured_interrupt

    return check_captured_interrupt()


#: Failures worth a Dagster retry (``dagster/max_retries``): infrastructure, not bad input.
_RETRYABLE = (QueueError, StorageError)
#: ... except what only a person can fix: a missing queue, a refused user or certificate.
_NOT_RETRYABLE = (QueueNotFoundError, BrokerAccessError, BrokerTLSError)


@contextlib.contextmanager
def as_dagster_failure() -> Iterator[None]:
    """Re-raise the package's errors as :class:`dagster.Failure` with a clean description.

    Only broker and storage failures allow Dagster's run/op retries; bad input, a missing
    queue, a user or certificate the broker refuses, or missing artefacts would fail the same
    way again.
    """
    try:
        yield
    except FactflowReplayError as exc:
        retryable = isinstance(exc, _RETRYABLE) and not isinstance(exc, _NOT_RETRYABLE)
        raise dg.Failure(
            description=str(exc),
            metadata={"error": type(exc).__name__, "exit_code": exc.exit_code},
            allow_retries=retryable,
        ) from exc


def mark_canceling(context: dg.OpExecutionContext, message: str) -> None:
    """Mark the run CANCELING unless a termination already did, so the interrupt that
    follows ends it CANCELED, not FAILURE (Dagster's rule; a Ctrl-C of an in-process run
    arrives without the mark a UI termination sets)."""
    run = context.instance.get_run_by_id(context.run_id)
    if run is not None and run.status != dg.DagsterRunStatus.CANCELING:
        context.instance.report_run_canceling(run, message=message)
