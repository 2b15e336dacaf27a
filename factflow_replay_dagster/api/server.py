"""Serve the API with uvicorn: the loopback rule, and access logs that never show a token."""

from __future__ import annotations

__all__ = ["RedactQuery", "serve"]

import copy
import logging
from typing import Any

import uvicorn
from uvicorn.config import LOGGING_CONFIG

from ..redaction import redact_url
from ..settings import Settings
from .app import create_app
from .auth import check_bind

log = logging.getLogger(__name__)


class RedactQuery(logging.Filter):
    """uvicorn's access log prints the path with its query string: secrets in it (a
    ``?token=`` the API refuses) are shown as ``***``. Headers are never logged."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], redact_url(args[2]), *args[3:])
        return True


def _log_config(level: str) -> dict[str, Any]:
    config: dict[str, Any] = copy.deepcopy(LOGGING_CONFIG)
    config["filters"] = {"redact_query": {"()": RedactQuery}}
    config["handlers"]["access"]["filters"] = ["redact_query"]
    config["loggers"]["uvicorn"]["level"] = level
    config["loggers"]["factflow_replay_dagster"] = {
        "handlers": ["default"],
        "level": level,
        "propagate": False,
    }
    return config


def serve(settings: Settings, *, host: str, port: int, verbose: int = 0) -> None:
    """Serve until SIGINT/SIGTERM. Without a token, only on a loopback address
    (:class:`~factflow_replay_dagster.errors.SettingsError` otherwise: exit code 2)."""
    check_bind(host, settings.api_tokens)
    level = "DEBUG" if verbose >= 2 else "INFO"
    if not settings.api_tokens:
        logging.getLogger(__name__).warning(
            "no FACTFLOW_API_TOKENS: the API answers anyone who can reach %s", host
        )
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        log_config=_log_config(level),
        access_log=True,
        server_header=False,
    )
