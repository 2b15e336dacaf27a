"""The one exception hierarchy: every failure the package raises on purpose is one of these.

Each error names the thing that is wrong and, where it helps, what exists instead.
None of them ever carries a password: URLs are redacted before they reach a message.

    FactflowReplayError
    ├── InvalidInputError                 bad input; nothing was changed        (exit 2)
    │   ├── InvalidIdError                malformed execution/route/stage id, path traversal
    │   ├── SnapshotError                 a pipeline config that does not parse or validate
    │   ├── SettingsError                 an environment variable that does not make sense
    │   ├── UnknownExecutionError         no execution with that id
    │   ├── UnknownRouteError             the snapshot has no such route
    │   ├── UnknownStageError             the snapshot has no such stage (in that route)
    │   ├── AmbiguousStageError           a stage name found in several routes
    │   ├── UnknownReplayError            no replay with that id (resume)
    │   └── InvalidStateError             the thing exists but cannot do that now
    ├── StorageError                      the artefact store failed
    │   ├── ArtefactNotFoundError         one object is missing                  (exit 3)
    │   ├── NoArtefactsError              a stage prefix holds nothing            (exit 3)
    │   └── IncompleteArtefactsError      storage holds fewer objects than lineage (exit 3)
    ├── QueueError                        the broker or embedded queue failed     (exit 4)
    │   ├── QueueNotFoundError            the target queue does not exist        (exit 2)
    │   ├── MessageTooLargeError          an artefact exceeds the broker's message size (exit 2)
    │   ├── UnroutableMessageError        the broker returned a mandatory message
    │   ├── MessageNackedError            the broker refused responsibility for a message
    │   └── BrokerConnectionError         connection lost and retries exhausted, or refused
    │       ├── BrokerAccessError         the broker refused the user: login, vhost or a
    │       │                             permission (ACCESS_REFUSED); not retried
    │       └── BrokerTLSError            the broker's TLS certificate is not trusted; not retried
    ├── ExecutionStoreError               the execution database failed
    ├── RunSubmissionError                Dagster (instance or webserver) did not take a run
    ├── ReplayError                       a replay failed for a reason of its own
    └── RecoveryError                     a recovery was refused
        ├── NotFailedError                the execution is not failed
        ├── AlreadyRecoveringError        another recovery of the same failure won
        ├── NothingSucceededError         no stage succeeded: that is a rerun, not a recovery
        ├── NotSettledError               a stage of the failed attempt is still running
        └── RecoveryLimitError            too many attempts; the execution needs a person

Queue errors that happen mid-publish carry ``confirmed``: how many messages of that
publish call the broker confirmed before the failure, so callers know exactly what was sent.
"""

from __future__ import annotations

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_BROKER",
    "EXIT_CANCELLED",
    "EXIT_FAILURE",
    "EXIT_MISSING_ARTEFACTS",
    "AlreadyRecoveringError",
    "AmbiguousStageError",
    "ArtefactNotFoundError",
    "BrokerAccessError",
    "BrokerConnectionError",
    "BrokerTLSError",
    "ExecutionStoreError",
    "FactflowReplayError",
    "IncompleteArtefactsError",
    "InvalidIdError",
    "InvalidInputError",
    "InvalidStateError",
    "MessageNackedError",
    "MessageTooLargeError",
    "NoArtefactsError",
    "NotFailedError",
    "NotSettledError",
    "NothingSucceededError",
    "QueueError",
    "QueueNotFoundError",
    "RecoveryError",
    "RecoveryLimitError",
    "ReplayError",
    "RunSubmissionError",
    "SettingsError",
    "SnapshotError",
    "StorageError",
    "UnknownExecutionError",
    "UnknownReplayError",
    "UnknownRouteError",
    "UnknownStageError",
    "UnroutableMessageError",
]

from collections.abc import Iterable

#: Exit codes shared by the CLI and documented in the README.
EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2
EXIT_MISSING_ARTEFACTS = 3
EXIT_BROKER = 4
EXIT_CANCELLED = 130


def _listing(names: Iterable[str], *, limit: int = 20) -> str:
    """Render ``names`` for an error message: sorted, bounded, never empty."""
    items = sorted(names)
    if not items:
        return "none"
    shown = ", ".join(items[:limit])
    return shown if len(items) <= limit else f"{shown}, ... ({len(items)} in all)"


class FactflowReplayError(Exception):
    """Base of every error this package raises on purpose."""

    exit_code: int = EXIT_FAILURE


# -- bad input -----------------------------------------------------------------------------


class InvalidInputError(FactflowReplayError):
    """The request itself is wrong; nothing was read, published or written."""

    exit_code = EXIT_BAD_INPUT


class InvalidIdError(InvalidInputError):
    """An id (execution, route, stage, ...) does not match the allowed pattern.

    Deliberately not a ``ValueError``: raised inside a pydantic validator it propagates
    as itself instead of being folded into a ``ValidationError``.
    """

    def __init__(self, kind: str, value: object, reason: str) -> None:
        self.kind = kind
        self.value = value
        self.reason = reason
        super().__init__(f"invalid {kind} id {value!r}: {reason}")


class SnapshotError(InvalidInputError):
    """A pipeline config (snapshot) could not be parsed or is inconsistent."""


class SettingsError(InvalidInputError):
    """An environment setting is malformed."""


class UnknownExecutionError(InvalidInputError):
    """No execution with this id is recorded."""

    def __init__(self, execution_id: str) -> None:
        self.execution_id = execution_id
        super().__init__(
            f"unknown execution {execution_id!r}: no such execution is recorded "
            "(see `factflow-replay execution list`, or `execution register` for one "
            "written by another deployment)"
        )


class UnknownRouteError(InvalidInputError):
    """The execution's config snapshot defines no such route."""

    def __init__(self, execution_id: str, route: str, routes: Iterable[str]) -> None:
        self.execution_id = execution_id
        self.route = route
        self.routes = sorted(routes)
        super().__init__(
            f"execution {execution_id!r} has no route {route!r} in its config snapshot "
            f"(routes: {_listing(self.routes)})"
        )


class UnknownStageError(InvalidInputError):
    """The execution's config snapshot has no such stage (in the given route)."""

    def __init__(
        self, execution_id: str, stage: str, stages: Iterable[str], *, route: str | None = None
    ) -> None:
        self.execution_id = execution_id
        self.stage = stage
        self.route = route
        self.stages = sorted(stages)
        where = f" in route {route!r}" if route else ""
        super().__init__(
            f"execution {execution_id!r} has no stage {stage!r}{where} "
            f"(stages: {_listing(self.stages)})"
        )


class AmbiguousStageError(InvalidInputError):
    """A stage name appears in more than one route; the caller must name the route."""

    def __init__(self, execution_id: str, stage: str, routes: Iterable[str]) -> None:
        self.execution_id = execution_id
        self.stage = stage
        self.routes = sorted(routes)
        super().__init__(
            f"stage {stage!r} of execution {execution_id!r} is in several routes "
            f"({_listing(self.routes)}): name one with source_route"
        )


class UnknownReplayError(InvalidInputError):
    """No replay with this id is recorded."""

    def __init__(self, replay_id: str) -> None:
        self.replay_id = replay_id
        super().__init__(f"unknown replay {replay_id!r}: no such replay is recorded")


class InvalidStateError(InvalidInputError):
    """The thing exists but its state forbids the request (e.g. resuming a finished replay)."""


# -- storage -------------------------------------------------------------------------------


class StorageError(FactflowReplayError):
    """The artefact store failed (I/O, permissions, S3 errors other than a missing key)."""


class ArtefactNotFoundError(StorageError):
    """One object is missing from the artefact store."""

    exit_code = EXIT_MISSING_ARTEFACTS

    def __init__(self, location: str, key: str) -> None:
        self.location = location
        self.key = key
        super().__init__(f"artefact {key!r} not found in {location}")


class NoArtefactsError(StorageError):
    """A stage prefix holds no artefacts, so there is nothing to replay or restart from."""

    exit_code = EXIT_MISSING_ARTEFACTS

    def __init__(self, location: str, prefix: str, *, detail: str = "") -> None:
        self.location = location
        self.prefix = prefix
        super().__init__(f"no artefacts under {prefix!r} in {location}{detail}")


class IncompleteArtefactsError(StorageError):
    """Storage holds fewer artefacts than the stage's lineage recorded: some were lost."""

    exit_code = EXIT_MISSING_ARTEFACTS

    def __init__(
        self,
        location: str,
        prefix: str,
        *,
        recorded: int,
        stored: int,
        missing: int | None = None,
        first_missing: str | None = None,
    ) -> None:
        self.location = location
        self.prefix = prefix
        self.recorded = recorded
        self.stored = stored
        self.missing = recorded - stored if missing is None else missing
        self.first_missing = first_missing
        example = f" (the first: {first_missing!r})" if first_missing else ""
        super().__init__(
            f"lineage recorded {recorded} artefacts under {prefix!r} but {location} holds "
            f"{stored} of them: {self.missing} missing{example}; nothing was published"
        )


# -- queues --------------------------------------------------------------------------------


class QueueError(FactflowReplayError):
    """The broker or the embedded queue failed.

    ``confirmed`` is how many messages of the failing publish call were confirmed first.
    """

    exit_code = EXIT_BROKER

    def __init__(self, message: str, *, confirmed: int = 0) -> None:
        self.confirmed = confirmed
        super().__init__(message)


class QueueNotFoundError(QueueError):
    """The target queue does not exist; checked before anything is published.

    Its exit code is that of bad input: the broker is fine, the route points nowhere.
    """

    exit_code = EXIT_BAD_INPUT

    def __init__(self, queue: str, broker: str) -> None:
        self.queue = queue
        self.broker = broker
        super().__init__(
            f"queue {queue!r} does not exist on {broker}; nothing was published "
            "(declare it, or start the pipeline's workers, first)"
        )


class MessageTooLargeError(QueueError):
    """An artefact is larger than the broker accepts in one message; found in the plan, so
    nothing was published. Its exit code is that of bad input: the broker is fine."""

    exit_code = EXIT_BAD_INPUT

    def __init__(self, key: str, size: int, limit: int, broker: str) -> None:
        self.key = key
        self.size = size
        self.limit = limit
        self.broker = broker
        super().__init__(
            f"artefact {key!r} is {size:,} bytes, more than the {limit:,} bytes {broker} "
            "accepts in one message (FACTFLOW_BROKER_MAX_MESSAGE_BYTES, set to the broker's "
            "max_message_size); nothing was published"
        )


class UnroutableMessageError(QueueError):
    """The broker returned a ``mandatory`` message: no queue was bound to receive it."""

    def __init__(self, queue: str, message_id: str, *, confirmed: int = 0) -> None:
        self.queue = queue
        self.message_id = message_id
        super().__init__(
            f"message {message_id!r} could not be routed to queue {queue!r} "
            "(was the queue deleted?)",
            confirmed=confirmed,
        )


class MessageNackedError(QueueError):
    """The broker negatively acknowledged a message (it did not take responsibility)."""

    def __init__(self, queue: str, message_id: str, *, confirmed: int = 0) -> None:
        self.queue = queue
        self.message_id = message_id
        super().__init__(
            f"broker refused message {message_id!r} for queue {queue!r} (is the queue full? "
            "a length limit with x-overflow reject-publish refuses messages once it is reached)",
            confirmed=confirmed,
        )


class BrokerConnectionError(QueueError):
    """The broker could not be reached, the connection was lost and retries ran out, or the
    broker refused it (the subclasses: retrying cannot help those)."""


class BrokerAccessError(BrokerConnectionError):
    """The broker refused this user: its login, the virtual host, or a permission on a queue
    or exchange (RabbitMQ's ACCESS_REFUSED). Not retried: only an administrator can fix it."""


class BrokerTLSError(BrokerConnectionError):
    """The broker's TLS certificate was not trusted (a private CA that is not in
    ``FACTFLOW_BROKER_CA_FILE``, or a name that does not match). Not retried."""


# -- execution store -----------------------------------------------------------------------


class ExecutionStoreError(FactflowReplayError):
    """The execution database failed or holds something inconsistent."""


class RunSubmissionError(FactflowReplayError):
    """A run could not be submitted to Dagster, or a run could not be reached there (the
    instance's storage, its code location, or a webserver failed or refused)."""


# -- replay and recovery -------------------------------------------------------------------


class ReplayError(FactflowReplayError):
    """A replay failed for a reason of its own (not bad input, storage or broker)."""


class RecoveryError(FactflowReplayError):
    """A recovery was refused; nothing was published."""

    exit_code = EXIT_BAD_INPUT


class NotFailedError(RecoveryError):
    """Only a failed execution can be recovered."""

    def __init__(self, execution_id: str, status: str) -> None:
        self.execution_id = execution_id
        self.status = status
        super().__init__(
            f"execution {execution_id!r} is {status}, not FAILED: only a failed execution "
            "can be recovered"
        )


class AlreadyRecoveringError(RecoveryError):
    """Another recovery of the same failure was recorded first."""

    def __init__(self, execution_id: str, attempt: int) -> None:
        self.execution_id = execution_id
        self.attempt = attempt
        super().__init__(
            f"execution {execution_id!r} is already being recovered (attempt {attempt}); "
            "nothing was published"
        )


class NothingSucceededError(RecoveryError):
    """No stage succeeded, so restarting means fetching the sources again."""

    def __init__(self, execution_id: str) -> None:
        self.execution_id = execution_id
        super().__init__(
            f"execution {execution_id!r} has no succeeded stage to restart from: restarting "
            "at the first stage would fetch the sources again, which is a new run, not a "
            "recovery (use `factflow-replay execution rerun` if that is what you want)"
        )


class NotSettledError(RecoveryError):
    """A stage of the failed attempt is still running; recovering now would redo its work."""

    def __init__(self, execution_id: str, running: list[str], retry_in: float) -> None:
        self.execution_id = execution_id
        self.running = running
        self.retry_in = retry_in
        super().__init__(
            f"execution {execution_id!r} failed, but {', '.join(running)} of the same attempt "
            f"{'is' if len(running) == 1 else 'are'} still running; recovering now would redo "
            f"that work. Retry once it finished (at most {retry_in:.0f} s from now), or force it"
        )


class RecoveryLimitError(RecoveryError):
    """The execution has been recovered too often; it is marked as needing a person."""

    def __init__(self, execution_id: str, attempts: int, maximum: int) -> None:
        self.execution_id = execution_id
        self.attempts = attempts
        self.maximum = maximum
        super().__init__(
            f"execution {execution_id!r} was recovered {attempts} times (maximum {maximum}); "
            "it is marked NEEDS_ATTENTION for a person to look at"
        )
