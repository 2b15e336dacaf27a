"""Turn pydantic validation failures into the package's own :class:`InvalidInputError`."""

from __future__ import annotations

__all__ = ["describe_validation_error", "repeated", "some", "validated"]

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from .errors import InvalidInputError

M = TypeVar("M", bound=BaseModel)


def describe_validation_error(exc: ValidationError) -> str:
    """``field: problem; field: problem`` without echoing whole inputs."""
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'value'}: {err['msg']}" for err in exc.errors()
    )


def validated(model: type[M], data: Mapping[str, Any], *, what: str) -> M:
    """``model.model_validate(data)``; bad ids raise :class:`InvalidIdError` (they propagate
    from the validators), anything else :class:`InvalidInputError` naming the fields."""
    try:
        return model.model_validate(dict(data))
    except ValidationError as exc:
        raise InvalidInputError(f"invalid {what}: {describe_validation_error(exc)}") from None


def repeated(names: Iterable[str]) -> list[str]:
    """The names that occur more than once, sorted (one pass, whatever their number)."""
    return sorted(name for name, count in Counter(names).items() if count > 1)


def some(names: list[str], limit: int = 20) -> str:
    """``names`` for an error message: at most ``limit`` of them, then how many in all."""
    shown = ", ".join(names[:limit])
    return shown if len(names) <= limit else f"{shown}, ... ({len(names)} in all)"
