"""The Dagster instance runs are recorded in, the same for the CLI, ``factflow-replay ui`` and
the HTTP API: ``$DAGSTER_HOME``, else ``<FACTFLOW_HOME>/dagster`` with the plugin's settings."""

from __future__ import annotations

__all__ = ["dagster_home", "open_instance"]

import os
from importlib import resources
from pathlib import Path

import dagster as dg

from ..settings import Settings


def dagster_home(settings: Settings) -> Path:
    """``$DAGSTER_HOME`` if set, else ``<FACTFLOW_HOME>/dagster`` (made with our instance file)."""
    if os.environ.get("DAGSTER_HOME"):
        return Path(os.environ["DAGSTER_HOME"])
    home = settings.home / "dagster"
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        template = resources.files("factflow_replay_dagster.defs") / "dagster_instance.yaml"
        config.write_text(template.read_text(encoding="utf-8"), encoding="utf-8")
    return home


def open_instance(settings: Settings) -> dg.DagsterInstance:
    """The instance of :func:`dagster_home` (use it in a ``with`` block)."""
    return dg.DagsterInstance.from_config(str(dagster_home(settings)))
