"""A Dagster code location module: ``dagster dev -m factflow_replay_dagster.defs.location``."""

from __future__ import annotations

from .definitions import build_definitions

defs = build_definitions()
