"""The bad-input table every replay entry point (service, Dagster job, CLI) must reject."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from factflow_replay_dagster import errors


@dataclass(frozen=True)
class BadInput:
    id: str
    request: dict[str, Any]  # overrides applied to a good request
    error: type[errors.FactflowReplayError]
    names: str  # text the error message must contain
    exit_code: int


def bad_inputs(parent: str) -> list[BadInput]:
    """Each case is a good request (``parent``, parse → enrich) with one thing wrong."""
    return [
        BadInput(
            "unknown-execution",
            {"source_execution_id": "no-such-exec"},
            errors.UnknownExecutionError,
            "no-such-exec",
            2,
        ),
        BadInput(
            "unknown-stage", {"from_stage": "summarise"}, errors.UnknownStageError, "summarise", 2
        ),
        BadInput(
            "stage-not-in-route",
            {"from_stage": "parse", "source_route": "enrich"},
            errors.UnknownStageError,
            "'parse' in route 'enrich'",
            2,
        ),
        BadInput("unknown-route", {"to_route": "publish"}, errors.UnknownRouteError, "publish", 2),
        BadInput(
            "unknown-source-route",
            {"source_route": "archive"},
            errors.UnknownRouteError,
            "archive",
            2,
        ),
        BadInput(
            "malformed-execution-id",
            {"source_execution_id": "bad id!"},
            errors.InvalidIdError,
            "bad id!",
            2,
        ),
        BadInput(
            "traversal-execution", {"source_execution_id": "../etc"}, errors.InvalidIdError, "..", 2
        ),
        BadInput(
            "traversal-stage",
            {"from_stage": "../../parse"},
            errors.InvalidIdError,
            "path separator",
            2,
        ),
        BadInput(
            "traversal-route",
            {"to_route": "enrich/../x"},
            errors.InvalidIdError,
            "path separator",
            2,
        ),
        BadInput(
            "nul-byte", {"from_stage": "pa\x00rse"}, errors.InvalidIdError, "control character", 2
        ),
        BadInput("too-long", {"to_route": "r" * 200}, errors.InvalidIdError, "at most 128", 2),
        BadInput(
            "unclosed-glob-set", {"match": "news-[0"}, errors.InvalidInputError, "never closes", 2
        ),
        BadInput(
            "nothing-matches",
            {"match": "nothing-*.json"},
            errors.NoArtefactsError,
            "nothing-*.json",
            3,
        ),
    ]
