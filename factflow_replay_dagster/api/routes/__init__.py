"""The API's routes, one module per resource: health, executions, replays."""

from __future__ import annotations

__all__ = ["executions", "health", "replays"]

from . import executions, health, replays
