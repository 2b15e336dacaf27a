"""Errors as JSON: one table from the package's error classes to an HTTP status and a code.

Every error response is ``{"code": ..., "message": ..., "field": ...}``: ``code`` is a stable
snake_case name a client can branch on, ``message`` the package error's own text (it names
the bad field or thing, never a secret), ``field`` the request field it is about, when known.
"""

from __future__ import annotations

__all__ = [
    "ERRORS",
    "ApiError",
    "ErrorBody",
    "error_responses",
    "install_error_handlers",
    "status_of",
]

import json
import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

from .. import errors as e

log = logging.getLogger(__name__)


class ErrorBody(BaseModel):
    """What every error response holds."""

    code: str = Field(description="A stable snake_case name of the error.")
    message: str = Field(description="What is wrong, naming the field or thing.")
    field: str | None = Field(default=None, description="The request field it is about.")


#: The package's errors, most specific first where it matters: (HTTP status, code).
#: A class not listed takes the entry of its nearest listed base class.
ERRORS: dict[type[e.FactflowReplayError], tuple[int, str]] = {
    # bad input
    e.InvalidIdError: (400, "invalid_id"),
    e.SnapshotError: (400, "invalid_snapshot"),
    e.AmbiguousStageError: (400, "ambiguous_stage"),
    e.InvalidInputError: (400, "invalid_input"),
    e.SettingsError: (500, "bad_settings"),
    # unknown things
    e.UnknownExecutionError: (404, "unknown_execution"),
    e.UnknownStageError: (404, "unknown_stage"),
    e.UnknownRouteError: (404, "unknown_route"),
    e.UnknownReplayError: (404, "unknown_replay"),
    e.NoArtefactsError: (404, "no_artefacts"),
    e.ArtefactNotFoundError: (404, "artefact_not_found"),
    # the thing exists, its state forbids the request
    e.InvalidStateError: (409, "invalid_state"),
    e.IncompleteArtefactsError: (409, "incomplete_artefacts"),
    e.QueueNotFoundError: (409, "queue_not_found"),
    e.MessageTooLargeError: (409, "message_too_large"),
    e.ReplayError: (409, "replay_conflict"),
    e.NotFailedError: (409, "not_failed"),
    e.AlreadyRecoveringError: (409, "already_recovering"),
    e.NothingSucceededError: (409, "nothing_succeeded"),
    e.NotSettledError: (409, "not_settled"),
    e.RecoveryLimitError: (409, "recovery_limit"),
    e.RecoveryError: (409, "recovery_refused"),
    # something is down
    e.StorageError: (503, "storage_unavailable"),
    e.QueueError: (503, "broker_unavailable"),
    e.ExecutionStoreError: (503, "database_unavailable"),
    e.RunSubmissionError: (503, "dagster_unavailable"),
    e.FactflowReplayError: (500, "internal_error"),
}


def status_of(error: e.FactflowReplayError) -> tuple[int, str]:
    """The (status, code) of ``error``: its class's entry, else its nearest base's."""
    for cls in type(error).__mro__:
        if cls in ERRORS:
            return ERRORS[cls]
    return 500, "internal_error"  # pragma: no cover - FactflowReplayError is listed


class ApiError(Exception):
    """An error of the API itself (authentication, a missing route), not of the package."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        field: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = ErrorBody(code=code, message=message, field=field)
        self.headers = dict(headers or {})

    def response(self) -> JSONResponse:
        return JSONResponse(self.body.model_dump(), status_code=self.status, headers=self.headers)


def error_responses(
    *statuses: int, also: Mapping[int | str, dict[str, Any]] | None = None
) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries: the route answers ``statuses`` with an :class:`ErrorBody`, and
    ``also`` (other statuses' entries)."""
    entries: dict[int | str, dict[str, Any]] = dict(also or {})
    for status in statuses:
        entries[status] = {"model": ErrorBody, "description": _DESCRIPTIONS[status]}
    return entries


_DESCRIPTIONS = {
    400: "Bad input: a malformed id, an ambiguous stage.",
    401: "No valid bearer token (or a token in the query string).",
    404: "Unknown execution, stage, route or replay; nothing stored to replay.",
    409: "The state forbids it: already recovering, a conflicting resume, no such queue.",
    422: "The body or a parameter does not validate.",
    503: "The broker, storage, database or Dagster is down.",
}


async def _request_values(request: Request) -> dict[str, Any]:
    """The path parameters and the JSON body's fields: where an error's culprit is looked up."""
    values: dict[str, Any] = dict(request.path_params)
    try:
        body = json.loads(await request.body() or b"null")
    except (ValueError, RuntimeError):
        body = None
    if isinstance(body, dict):
        values.update(body)
    return values


def _field_of(error: e.FactflowReplayError, values: Mapping[str, Any]) -> str | None:
    """The request field holding the value an error names (an id, a stage, a route)."""
    for attribute in ("value", "stage", "route", "replay_id", "execution_id"):
        wanted = getattr(error, attribute, None)
        if isinstance(wanted, str):
            found = [name for name, value in values.items() if value == wanted]
            if found:
                return found[0]
    return None


async def _package_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, e.FactflowReplayError)
    status, code = status_of(exc)
    field = _field_of(exc, await _request_values(request))
    headers = {}
    if isinstance(exc, e.NotSettledError):
        headers["Retry-After"] = str(max(1, round(exc.retry_in)))
    if status >= 500:
        log.warning("%s %s: %s: %s", request.method, request.url.path, code, exc)
    body = ErrorBody(code=code, message=str(exc), field=field)
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems, field = [], None
    for error in exc.errors():
        location = [str(p) for p in error.get("loc", ()) if p not in ("body", "path", "query")]
        name = ".".join(location)
        field = field or (location[0] if location else None)
        problems.append(f"{name}: {error.get('msg', 'invalid')}" if name else error.get("msg", ""))
    body = ErrorBody(code="invalid_request", message="; ".join(problems) or "invalid", field=field)
    return JSONResponse(body.model_dump(), status_code=422)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    codes = {404: "not_found", 405: "method_not_allowed"}
    body = ErrorBody(code=codes.get(exc.status_code, f"http_{exc.status_code}"), message=exc.detail)
    return JSONResponse(body.model_dump(), status_code=exc.status_code, headers=exc.headers)


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return exc.response()


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    body = ErrorBody(code="internal_error", message="internal error; see the API's log")
    return JSONResponse(body.model_dump(), status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    """Every error the app can meet answers with an :class:`ErrorBody`."""
    app.add_exception_handler(e.FactflowReplayError, _package_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(Exception, _unexpected)
