"""What a stage callable receives and returns, and how ``module:function`` names resolve."""

from __future__ import annotations

__all__ = ["Input", "Output", "StageContext", "StageFunction", "resolve_stage"]

import functools
import importlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import SnapshotError
from ..ids import validate_id


@dataclass(frozen=True, slots=True)
class Input:
    """One stored artefact handed to a stage (``None`` for a source stage's run)."""

    key: str
    data: bytes
    content_type: str = "application/octet-stream"

    @property
    def name(self) -> str:
        return self.key.rsplit("/", 1)[-1]


@dataclass(frozen=True, slots=True)
class Output:
    """One artefact a stage produces; stored as ``executions/<e>/<route>/<stage>/<name>``.

    ``name`` must be unique within the stage of an execution and the same every time the
    same input is processed: that is what makes re-processing after a crash idempotent.
    """

    name: str
    data: bytes
    content_type: str = "application/json"

    def __post_init__(self) -> None:
        validate_id(self.name, kind="object")


@dataclass(frozen=True)
class StageContext:
    """Everything a stage may use: where it runs, its options, its input, a counter."""

    execution_id: str
    route: str
    stage: str
    attempt: int
    options: Mapping[str, Any]
    input: Input | None
    count: Callable[[str, int], int] = field(repr=False)

    def option(self, name: str, default: Any = None) -> Any:
        return self.options.get(name, default)


StageFunction = Callable[[StageContext], Iterable[Output]]


@functools.lru_cache(maxsize=256)
def resolve_stage(reference: str) -> StageFunction:
    """Import ``module:function``; a clear :class:`SnapshotError` if it does not resolve."""
    module_name, _, attribute = reference.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise SnapshotError(
            f"stage callable {reference!r}: cannot import {module_name!r}: {exc}"
        ) from None
    function = getattr(module, attribute, None)
    if not callable(function):
        raise SnapshotError(
            f"stage callable {reference!r}: {module_name} has no function {attribute!r}"
        )
    return function  # type: ignore[no-any-return]
