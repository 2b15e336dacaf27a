"""The storage layout ``executions/<execution>/<route>/<stage>/<object>``, built only here."""

from __future__ import annotations

__all__ = [
    "ROOT",
    "ArtefactLocation",
    "artefact_key",
    "execution_prefix",
    "parse_key",
    "stage_prefix",
]

from dataclasses import dataclass

from .errors import InvalidIdError
from .ids import validate_id

ROOT = "executions"


@dataclass(frozen=True, slots=True)
class ArtefactLocation:
    """Where one artefact lives, as parsed from (or used to build) its key."""

    execution_id: str
    route: str
    stage: str
    name: str

    @property
    def key(self) -> str:
        return artefact_key(self.execution_id, self.route, self.stage, self.name)


def execution_prefix(execution_id: str) -> str:
    """``executions/<execution>/``: every artefact of one execution."""
    return f"{ROOT}/{validate_id(execution_id, kind='execution')}/"


def stage_prefix(execution_id: str, route: str, stage: str) -> str:
    """``executions/<execution>/<route>/<stage>/``: every artefact one stage stored."""
    return (
        execution_prefix(execution_id)
        + f"{validate_id(route, kind='route')}/{validate_id(stage, kind='stage')}/"
    )


def artefact_key(execution_id: str, route: str, stage: str, name: str) -> str:
    """The key of one artefact; ``name`` is validated like an id (no ``/``, no ``..``)."""
    return stage_prefix(execution_id, route, stage) + validate_id(name, kind="object")


def parse_key(key: str) -> ArtefactLocation:
    """Split a key built by :func:`artefact_key` back into its parts, validating each."""
    parts = key.split("/")
    if len(parts) != 5 or parts[0] != ROOT:
        raise InvalidIdError(
            "object", key, f"not of the form {ROOT}/<execution>/<route>/<stage>/<object>"
        )
    _, execution_id, route, stage, name = parts
    return ArtefactLocation(
        validate_id(execution_id, kind="execution"),
        validate_id(route, kind="route"),
        validate_id(stage, kind="stage"),
        validate_id(name, kind="object"),
    )
