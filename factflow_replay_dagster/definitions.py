"""Build the Dagster ``Definitions``: jobs, sensors, stage assets and resources from settings."""

from __future__ import annotations

__all__ = ["build_definitions"]

import dagster as dg

from .jobs import recovery_job, replay_job, rerun_stage_job
from .resources import build_resources
from .sensors import make_failed_execution_sensor, make_replay_run_sensors
from .settings import Settings


def build_definitions(settings: Settings | None = None) -> dg.Definitions:
    """Everything this plugin contributes, configured from ``settings`` (default: environment)."""
    settings = settings or Settings.from_env()
    status = (
        dg.DefaultSensorStatus.RUNNING if settings.auto_recovery else dg.DefaultSensorStatus.STOPPED
    )
    sensors = [
        make_failed_execution_sensor(
            recovery_job,
            minimum_interval_seconds=settings.recovery_sensor_interval,
            default_status=status,
        ),
        *make_replay_run_sensors(replay_job),
    ]
    return dg.Definitions(
        jobs=[replay_job, rerun_stage_job, recovery_job],
        sensors=sensors,
        resources=build_resources(settings),
    )
