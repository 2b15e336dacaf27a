"""The storage layout ``executions/<execution>/<route>/<stage>/<object>``, built only here."""

from __future__ import annotations

__all__ = ["ROOT", "artefact_key", "execution_prefix", "stage_prefix"]

from .ids import validate_id

ROOT = "executions"


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
