"""The Dagster layer: resources, jobs, sensors, stage assets and the ``Definitions`` builder.

Everything here is a thin shell over the plain core (``storage``, ``queues``, ``executions``,
``replay``, ``recovery``): the core never imports this package (an import-linter contract
in CI says so). Load it as a code location with ``definitions.py`` at the repository root or
``dagster dev -m factflow_replay_dagster.defs.location``.
"""

from __future__ import annotations

__all__ = ["build_definitions", "build_job_definitions"]

from .definitions import build_definitions, build_job_definitions
