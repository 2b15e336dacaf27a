"""The console logger of runs the command line executes in its own process.

Dagster's own console logger prints every event at or above its level with the run id, the
process id and, for a failure, Dagster's whole stack trace. The command line reports a
failure itself, as one typed message with its exit code, so at its default level
(``WARNING``) this logger shows warnings (a replay cancelled, completeness unknown) and leaves
failures to the command line; from ``INFO`` (``-v``) it shows them too, and at ``DEBUG``
(``-vv``) Dagster's whole message with the error's stack. The
run's event log, which the UI shows, keeps every event whatever this logger prints.
"""

from __future__ import annotations

__all__ = ["cli_console_logger"]

import logging
import sys

import dagster as dg

#: Where Dagster puts an event's structured fields on a log record.
_META = "dagster_meta"


class _Stderr(logging.Handler):
    """Writes to ``sys.stderr`` as it is when a line is written (the command line redirects
    it above its progress bar while a run runs)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
        except Exception:  # noqa: BLE001 - logging must never break the run
            self.handleError(record)


class _Line(logging.Formatter):
    """``LEVEL step: message``: what the command line's user needs from a run's event; at
    DEBUG (``-vv``) Dagster's whole message (run id, process, event type, error stack)."""

    def __init__(self, *, whole: bool) -> None:
        super().__init__()
        self.whole = whole

    def format(self, record: logging.LogRecord) -> str:
        meta = getattr(record, _META, None) or {}
        message = record.getMessage() if self.whole else meta.get("orig_message")
        message = message or record.getMessage()
        step = meta.get("step_key")
        line = f"{record.levelname} {step}: {message}" if step else f"{record.levelname} {message}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def _failures_hidden(record: logging.LogRecord) -> bool:
    return record.levelno < logging.ERROR


@dg.logger(
    {
        "log_level": dg.Field(str, is_required=False, default_value="WARNING"),
        "name": dg.Field(str, is_required=False, default_value="factflow-replay"),
    },
    description="The command line's console: warnings at WARNING, failures too from INFO.",
)
def cli_console_logger(init_context: dg.InitLoggerContext) -> logging.Logger:
    config = init_context.logger_config
    level = logging.getLevelNamesMapping()[str(config["log_level"]).upper()]
    # A logger of this run's own, as Dagster's console logger is: not registered globally.
    logger = logging.Logger(str(config["name"]), level)  # noqa: LOG001
    handler = _Stderr(level)
    handler.setFormatter(_Line(whole=level <= logging.DEBUG))
    if level >= logging.WARNING:
        handler.addFilter(_failures_hidden)
    logger.addHandler(handler)
    return logger
