"""Build the Dagster ``Definitions``: jobs, sensors, stage assets and resources from settings."""

from __future__ import annotations

__all__ = ["build_definitions", "build_job_definitions"]

import warnings

import dagster as dg

from ..settings import Settings
from .assets import load_registered_configs, stage_asset_specs, stored_artefacts_checks
from .console import cli_console_logger
from .jobs import (
    make_recovery_job,
    make_replay_job,
    make_rerun_stage_job,
    make_verify_stored_job,
)
from .progress import NO_PROGRESS
from .resources import build_resources
from .sensors import (
    make_failed_execution_sensor,
    make_replay_run_sensors,
    make_stale_replay_sensor,
    make_stored_artefacts_sensor,
)


def build_definitions(
    settings: Settings | None = None,
    *,
    console_level: str | None = None,
    executor: dg.ExecutorDefinition | None = None,
) -> dg.Definitions:
    """Everything this plugin contributes, configured from ``settings`` (default: environment).

    Stage assets come from the registered pipeline configs (``FACTFLOW_PIPELINES``, or the
    bundled samples). ``console_level`` sets the level of Dagster's console logger for runs
    of these jobs (the command line runs them in-process at WARNING); the event log, which
    the UI shows, keeps everything whatever it is. ``executor`` runs every job's steps (for
    example ``k8s_job_executor``: a sharded replay's shards in pods of their own); without
    it, Dagster's default executor (a replay's shards in processes of the run's own).
    """
    settings = settings or Settings.from_env()
    jobs = _jobs(console_level, executor)
    replay_job, _, recovery_job, _ = jobs
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
        make_stale_replay_sensor(stale_after=settings.replay_stale_seconds),
        make_stored_artefacts_sensor(
            specs,
            minimum_interval_seconds=settings.discovery_interval,
            verify=settings.verify_on_discovery,
        ),
    ]
    defs = dg.Definitions(
        assets=specs,
        asset_checks=stored_artefacts_checks(specs),
        jobs=jobs,
        sensors=sensors,
        resources=_resources(settings),
        executor=executor,
    )
    with warnings.catch_warnings():
        # Dagster re-creates sensors that target jobs with an `owners=[]` it then warns about
        # (its own beta parameter, not ours); resolving here, once, keeps it off every screen.
        warnings.filterwarnings(
            "ignore",
            category=dg.BetaWarning,
            message=r"Parameter `owners` of initializer `SensorDefinition",
        )
        defs.get_repository_def()
    return defs


def build_job_definitions(
    settings: Settings, *, console_level: str | None = None
) -> dg.Definitions:
    """The jobs and their resources alone, for running a job in-process outside a code
    location (the command line): no stage assets, checks or sensors to load first. Runs are
    recorded in the instance they run in, which the UI shows like any other. Their console
    is the command line's (:mod:`.console`): it reports failures itself."""
    return dg.Definitions(
        jobs=_jobs(console_level),
        resources=_resources(settings),
        loggers={"console": cli_console_logger},
    )


def _jobs(
    console_level: str | None, executor: dg.ExecutorDefinition | None = None
) -> list[dg.JobDefinition]:
    return [
        make_replay_job(console_level=console_level, executor_def=executor),
        make_rerun_stage_job(console_level=console_level),
        make_recovery_job(console_level=console_level),
        make_verify_stored_job(console_level=console_level),
    ]


def _resources(settings: Settings) -> dict[str, object]:
    return {**build_resources(settings), "progress": NO_PROGRESS}
