"""Build the Dagster ``Definitions``: jobs, sensors, stage assets and resources from settings."""

from __future__ import annotations

__all__ = ["build_definitions"]

import dagster as dg

from .jobs import replay_job
from .resources import build_resources
from .settings import Settings


def build_definitions(settings: Settings | None = None) -> dg.Definitions:
    """Everything this plugin contributes, configured from ``settings`` (default: environment)."""
    settings = settings or Settings.from_env()
    return dg.Definitions(jobs=[replay_job], resources=build_resources(settings))
