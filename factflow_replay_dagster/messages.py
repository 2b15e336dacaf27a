"""The message protocol on factflow queues: artefact envelopes, init messages and end markers.

Documented for humans in ``docs/protocol.md``; the reference runtime is its executable spec.
Every message carries a deterministic ``message_id`` and headers naming where it came from,
so consumers can de-duplicate re-sends.
"""

from __future__ import annotations

__all__ = [
    "ARTEFACT_TYPE",
    "END_TYPE",
    "INIT_TYPE",
    "PROTOCOL_VERSION",
    "ArtefactEnvelope",
    "ArtefactHeaders",
    "EndMarker",
    "Headers",
    "InitMessage",
    "artefact_message_id",
    "end_marker_id",
    "forward_message_id",
    "init_message_id",
]

import hashlib
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from .queues.base import HeaderValue, OutgoingMessage
from .snapshot import StageRef

PROTOCOL_VERSION: Literal[1] = 1
ARTEFACT_TYPE = "factflow.artefact"
INIT_TYPE = "factflow.init"
END_TYPE = "factflow.end"
JSON = "application/json"


class Headers:
    """Header names; all start with ``factflow-`` and carry strings or integers."""

    PROTOCOL = "factflow-protocol"
    EXECUTION = "factflow-execution"  # the execution the message belongs to (replay: child)
    ATTEMPT = "factflow-attempt"
    ROUTE = "factflow-route"  # the route/stage the message is addressed to
    STAGE = "factflow-stage"
    SOURCE_EXECUTION = "factflow-source-execution"  # where the artefact is stored
    SOURCE_ROUTE = "factflow-source-route"
    SOURCE_STAGE = "factflow-source-stage"
    OBJECT_KEY = "factflow-object-key"
    ETAG = "factflow-etag"
    REPLAY_ID = "factflow-replay-id"
    CHILD_EXECUTION = "factflow-child-execution"


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:32]


def artefact_message_id(source_execution_id: str, key: str, etag: str) -> str:
    """Deterministic id of a stored artefact: the same object sent twice has the same id."""
    return f"art-{_digest(source_execution_id, key, etag)}"


def forward_message_id(execution_id: str, attempt: int, key: str) -> str:
    """Id of an artefact a running stage forwards: one per key per attempt, whatever its
    content, so re-processing after a crash cannot count an output twice downstream."""
    return f"fwd-{_digest(execution_id, str(attempt), key)}"


def init_message_id(execution_id: str, attempt: int) -> str:
    """One init message per execution attempt: a duplicate publish carries the same id."""
    return f"init-{execution_id}-{attempt}"


def end_marker_id(execution_id: str, route: str, stage: str, attempt: int) -> str:
    return f"end-{_digest(execution_id, route, stage, str(attempt))}"


class ArtefactHeaders(BaseModel):
    """The headers of an artefact message (its body is the stored bytes, unchanged)."""

    model_config = ConfigDict(frozen=True)

    execution_id: str
    attempt: int
    route: str
    stage: str
    source_execution_id: str
    source_route: str
    source_stage: str
    object_key: str
    etag: str
    replay_id: str | None = None

    def to_headers(self) -> dict[str, HeaderValue]:
        headers: dict[str, HeaderValue] = {
            Headers.PROTOCOL: PROTOCOL_VERSION,
            Headers.EXECUTION: self.execution_id,
            Headers.ATTEMPT: self.attempt,
            Headers.ROUTE: self.route,
            Headers.STAGE: self.stage,
            Headers.SOURCE_EXECUTION: self.source_execution_id,
            Headers.SOURCE_ROUTE: self.source_route,
            Headers.SOURCE_STAGE: self.source_stage,
            Headers.OBJECT_KEY: self.object_key,
            Headers.ETAG: self.etag,
        }
        if self.replay_id is not None:
            headers[Headers.REPLAY_ID] = self.replay_id
            headers[Headers.CHILD_EXECUTION] = self.execution_id
        return headers

    @classmethod
    def from_headers(cls, headers: dict[str, HeaderValue]) -> ArtefactHeaders:
        def get(name: str) -> str:
            return str(headers[name])

        replay = headers.get(Headers.REPLAY_ID)
        return cls(
            execution_id=get(Headers.EXECUTION),
            attempt=int(headers[Headers.ATTEMPT]),
            route=get(Headers.ROUTE),
            stage=get(Headers.STAGE),
            source_execution_id=get(Headers.SOURCE_EXECUTION),
            source_route=get(Headers.SOURCE_ROUTE),
            source_stage=get(Headers.SOURCE_STAGE),
            object_key=get(Headers.OBJECT_KEY),
            etag=get(Headers.ETAG),
            replay_id=None if replay is None else str(replay),
        )

    def message(
        self,
        body: bytes,
        *,
        content_type: str = "application/octet-stream",
        message_id: str | None = None,
    ) -> OutgoingMessage:
        """The message carrying ``body``; its id defaults to :func:`artefact_message_id`."""
        return OutgoingMessage(
            message_id=message_id
            or artefact_message_id(self.source_execution_id, self.object_key, self.etag),
            body=body,
            headers=self.to_headers(),
            content_type=content_type,
            type=ARTEFACT_TYPE,
            position=self.object_key,
        )


class ArtefactEnvelope:
    """The artefact messages of one hand-off (a replay, or a stage forwarding its outputs):
    the headers they share are built and validated once; each message adds only its object
    key, etag and id. Messages are exactly what :meth:`ArtefactHeaders.message` builds."""

    __slots__ = ("_source_execution_id", "_template", "content_type")

    def __init__(
        self,
        *,
        execution_id: str,
        attempt: int,
        route: str,
        stage: str,
        source_execution_id: str,
        source_route: str,
        source_stage: str,
        replay_id: str | None = None,
        content_type: str = "application/octet-stream",
    ) -> None:
        shared = ArtefactHeaders(
            execution_id=execution_id,
            attempt=attempt,
            route=route,
            stage=stage,
            source_execution_id=source_execution_id,
            source_route=source_route,
            source_stage=source_stage,
            object_key="",
            etag="",
            replay_id=replay_id,
        ).to_headers()
        self._template = shared
        self._source_execution_id = source_execution_id
        self.content_type = content_type

    def message(
        self, key: str, etag: str, body: bytes, *, message_id: str | None = None
    ) -> OutgoingMessage:
        """The message carrying the object ``key`` (content ``body``, etag ``etag``)."""
        headers = self._template.copy()
        headers[Headers.OBJECT_KEY] = key
        headers[Headers.ETAG] = etag
        return OutgoingMessage(
            message_id or artefact_message_id(self._source_execution_id, key, etag),
            body,
            headers,
            self.content_type,
            ARTEFACT_TYPE,
            key,
        )


def _now() -> datetime:
    return datetime.now(UTC)


class InitMessage(BaseModel):
    """ "Start (or restart) execution X at route R, stage S": a first run, a rerun, a recovery.

    ``input`` names the stored artefacts the stage consumes (the previous stage's, possibly
    in a parent execution); ``None`` means a source stage, which fetches its own input.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    protocol: Literal[1] = PROTOCOL_VERSION
    kind: Literal["start", "rerun", "recover"]
    execution_id: str
    route: str
    stage: str
    attempt: int = Field(ge=1)
    input: StageRef | None = None
    continue_downstream: bool = True
    reason: str | None = None
    requested_by: str | None = None
    dagster_run_id: str | None = None
    created_at: datetime = Field(default_factory=_now)

    @property
    def message_id(self) -> str:
        return init_message_id(self.execution_id, self.attempt)

    def message(self) -> OutgoingMessage:
        return OutgoingMessage(
            message_id=self.message_id,
            body=self.model_dump_json().encode(),
            headers={
                Headers.PROTOCOL: PROTOCOL_VERSION,
                Headers.EXECUTION: self.execution_id,
                Headers.ATTEMPT: self.attempt,
                Headers.ROUTE: self.route,
                Headers.STAGE: self.stage,
            },
            content_type=JSON,
            type=INIT_TYPE,
            position=self.message_id,
        )


class EndMarker(BaseModel):
    """Sent after a stage completes: the next stage will receive exactly ``count`` inputs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    protocol: Literal[1] = PROTOCOL_VERSION
    execution_id: str
    attempt: int
    route: str  # the stage the marker is addressed to
    stage: str
    count: int = Field(ge=0)
    source: StageRef | None = None
    replay_id: str | None = None

    @property
    def message_id(self) -> str:
        source = self.source.stage if self.source else (self.replay_id or "")
        return end_marker_id(self.execution_id, self.route, f"{self.stage}<{source}", self.attempt)

    def message(self) -> OutgoingMessage:
        return OutgoingMessage(
            message_id=self.message_id,
            body=self.model_dump_json().encode(),
            headers={
                Headers.PROTOCOL: PROTOCOL_VERSION,
                Headers.EXECUTION: self.execution_id,
                Headers.ATTEMPT: self.attempt,
                Headers.ROUTE: self.route,
                Headers.STAGE: self.stage,
            },
            content_type=JSON,
            type=END_TYPE,
            position=self.message_id,
        )
