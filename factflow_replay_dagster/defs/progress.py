"""Where a running replay reports its progress besides the run's log: the ``progress`` resource.

Code locations bind :data:`NO_PROGRESS`; the command line runs jobs in-process with a
:class:`ProgressCallback` instead, so its progress bar is fed by the op itself (no polling,
no parsing of log lines).
"""

from __future__ import annotations

__all__ = ["NO_PROGRESS", "ProgressCallback", "ProgressSink"]

from collections.abc import Callable

from ..replay import ReplayProgress


class ProgressSink:
    """Receives each progress update of a replay; this one ignores them."""

    def report(self, update: ReplayProgress) -> None:
        """Called on the op's thread each time the replay saves its position."""


class ProgressCallback(ProgressSink):
    """Hands every update to ``callback`` (the CLI's progress bar)."""

    def __init__(self, callback: Callable[[ReplayProgress], None]) -> None:
        self._callback = callback

    def report(self, update: ReplayProgress) -> None:
        self._callback(update)


#: The resource every code location binds as ``progress``.
NO_PROGRESS = ProgressSink()
