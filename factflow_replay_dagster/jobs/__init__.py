"""Dagster jobs: replay, same-pipeline rerun and recovery, each a thin shell over the core."""

from __future__ import annotations

from .replay import ReplayConfig, replay_job

__all__ = ["ReplayConfig", "replay_job"]
