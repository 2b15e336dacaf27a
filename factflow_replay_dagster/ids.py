"""One function validates every id (execution, route, stage, ...) at every edge of the package."""

from __future__ import annotations

__all__ = [
    "ID_MAX_LENGTH",
    "ID_PATTERN",
    "ExecutionId",
    "IdKind",
    "ReplayId",
    "RouteId",
    "StageId",
    "new_id",
    "validate_id",
]

import re
import secrets
import time
from typing import Annotated, Literal

from pydantic import AfterValidator

from .errors import InvalidIdError

IdKind = Literal["execution", "route", "stage", "pipeline", "replay", "object", "queue"]

#: Conservative on purpose: ids become path segments, queue header values and Dagster
#: partition keys, so they may not contain ``/``, ``|``, whitespace or ``..``.
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
ID_MAX_LENGTH = 128
#: Object names (the last path segment) may be longer, as file names often are.
_MAX_LENGTH = {"object": 255, "queue": 255}


def validate_id(value: object, *, kind: IdKind) -> str:
    """Return ``value`` if it is a valid ``kind`` id, else raise :class:`InvalidIdError`.

    The error says why: empty, too long, a ``/``, a ``..``, a control character, or a
    character outside ``[A-Za-z0-9._-]`` (the first character must be a letter or digit).
    """
    if not isinstance(value, str):
        raise InvalidIdError(kind, value, f"must be a string, not {type(value).__name__}")
    if not value:
        raise InvalidIdError(kind, value, "must not be empty")
    limit = _MAX_LENGTH.get(kind, ID_MAX_LENGTH)
    if len(value) > limit:
        raise InvalidIdError(kind, value[:40] + "...", f"{len(value)} characters, at most {limit}")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise InvalidIdError(kind, value, "contains a control character (NUL, newline, ...)")
    if "/" in value or "\\" in value:
        raise InvalidIdError(kind, value, "contains a path separator")
    if ".." in value:
        raise InvalidIdError(kind, value, "contains '..' (path traversal)")
    if ID_PATTERN.fullmatch(value) is None:
        raise InvalidIdError(
            kind,
            value,
            "must start with a letter or digit and contain only letters, digits, '.', '_', '-'",
        )
    return value


def new_id(prefix: str) -> str:
    """A fresh, sortable, valid id such as ``exec-20261123T101500-3f9a1c2b``."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    return validate_id(f"{prefix}-{stamp}-{secrets.token_hex(4)}", kind="execution")


#: Id fields of the package's pydantic requests: checked by :func:`validate_id` (a bad id
#: raises :class:`InvalidIdError` itself, not a ``ValidationError``).
ExecutionId = Annotated[str, AfterValidator(lambda v: validate_id(v, kind="execution"))]
RouteId = Annotated[str, AfterValidator(lambda v: validate_id(v, kind="route"))]
StageId = Annotated[str, AfterValidator(lambda v: validate_id(v, kind="stage"))]
ReplayId = Annotated[str, AfterValidator(lambda v: validate_id(v, kind="replay"))]
