"""Build the Dagster ``Definitions``: jobs, sensors, stage assets and resources from settings."""

from __future__ import annotations

__all__ = ["build_definitions"]

import dagster as dg

from .assets import load_registered_configs, stage_asset_specs, stored_artefacts_checks
from .jobs import recovery_job, replay_job, rerun_stage_job, verify_stored_job
from .resources import build_resources
from .sensors import (
    make_failed_execution_sensor,
    make_replay_run_sensors,
    make_stored_artefacts_sensor,
)
from .settings import Settings


def build_definitions(settings: Settings | None = None) -> dg.Definitions:
    """Everything this plugin contributes, configured from ``settings`` (default: environment).

    Stage assets come from the registered pipeline configs (``FACTFLOW_PIPELINES``, or the
    bundled samples).
    """
    settings = settings or Settings.from_env()
    specs = stage_asset_specs(load_registered_configs(settings))
    recovery_status = (
        dg.DefaultSensorStatus.RUNNING if settings.auto_recovery else dg.DefaultSensorStatus.STOPPED
    )
    sensors = [
        make_failed_execution_sensor(
            recovery_job,
            minimum_interval_seconds=settings.recovery_sensor_interval,
            default_status=recovery_status,
        ),
        *make_replay_run_sensors(replay_job),
        make_stored_artefacts_sensor(
            specs,
            minimum_interval_seconds=settings.discovery_interval,
            verify=settings.verify_on_discovery,
        ),
    ]
    return dg.Definitions(
        assets=specs,
        asset_checks=stored_artefacts_checks(specs),
        jobs=[replay_job, rerun_stage_job, recovery_job, verify_stored_job],
        sensors=sensors,
        resources=build_resources(settings),
    )
