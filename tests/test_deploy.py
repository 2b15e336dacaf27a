"""The deployment files: the production instance profile is a valid Dagster instance, the
Helm values say the same thing, and docs/deployment.md names every variable they read.

(tests/e2e/test_production_profile.py runs the profile itself, on real servers.)
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml
from dagster._core.instance.config import dagster_instance_config
from dagster._core.instance.ref import InstanceRef
from dagster._core.run_coordinator import QueuedRunCoordinator

from factflow_replay_dagster.defs import build_definitions
from factflow_replay_dagster.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
PROFILE = ROOT / "deploy" / "dagster.production.yaml"
HELM = ROOT / "deploy" / "helm" / "values.yaml"
GUIDE = ROOT / "docs" / "deployment.md"


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(path.read_text())
    return data


def profile_variables() -> list[str]:
    return re.findall(r"\{env: ([A-Z0-9_]+)\}", PROFILE.read_text())


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A DAGSTER_HOME holding the profile, with every variable it reads set."""
    shutil.copyfile(PROFILE, tmp_path / "dagster.yaml")
    for name in profile_variables():
        monkeypatch.setenv(name, "5432" if name.endswith("_PORT") else str(tmp_path / name))
    return tmp_path


def test_the_profile_is_a_valid_instance(home: Path) -> None:
    config, custom_class = dagster_instance_config(str(home))  # validates against the schema
    assert custom_class is None
    assert config["storage"]["postgres"]["postgres_db"]["password"] == {
        "env": "DAGSTER_POSTGRES_PASSWORD"
    }
    ref = InstanceRef.from_dir(str(home))
    assert isinstance(ref.run_coordinator, QueuedRunCoordinator)
    assert ref.compute_logs_data.class_name == "LocalComputeLogManager"
    assert ref.local_artifact_storage.base_dir == str(home / "DAGSTER_ARTIFACTS_DIR")
    assert ref.settings["telemetry"] == {"enabled": False}
    assert ref.settings["run_monitoring"]["enabled"] is True


def test_the_profile_limits_replays_per_queue_and_source_and_recoveries() -> None:
    limits = load(PROFILE)["concurrency"]["runs"]["tag_concurrency_limits"]
    by_key = {(limit["key"], str(limit.get("value"))): limit["limit"] for limit in limits}
    per_value = str({"applyLimitPerUniqueValue": True})
    assert by_key[("factflow/queue", per_value)] >= 1
    assert by_key[("factflow/source_execution", per_value)] >= 1
    assert by_key[("factflow/kind", "recovery")] >= 1


def test_no_secret_is_written_in_the_profile() -> None:
    storage = load(PROFILE)["storage"]["postgres"]["postgres_db"]
    assert all(set(value) == {"env"} for value in storage.values())


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


def _snake_keys(data: dict[str, Any]) -> dict[str, Any]:
    return {_snake(k): v for k, v in data.items()}


def test_the_helm_values_say_what_the_profile_says() -> None:
    profile, helm = load(PROFILE), load(HELM)
    runs = helm["concurrency"]["runs"]
    assert helm["concurrency"]["enabled"] is True
    assert runs["maxConcurrentRuns"] == profile["concurrency"]["runs"]["max_concurrent_runs"]
    assert runs["tagConcurrencyLimits"] == profile["concurrency"]["runs"]["tag_concurrency_limits"]
    daemon = helm["dagsterDaemon"]
    assert daemon["runCoordinator"]["type"] == profile["run_coordinator"]["class"]
    queued = daemon["runCoordinator"]["config"]["queuedRunCoordinator"]
    assert _snake_keys(queued) == profile["run_coordinator"]["config"]
    assert _snake_keys(daemon["runMonitoring"]) == profile["run_monitoring"]
    assert _snake_keys(daemon["runRetries"]) == profile["run_retries"]
    assert _snake_keys(daemon["sensors"]) == profile["sensors"]
    assert _snake_keys(helm["pythonLogs"]) == profile["python_logs"]
    sensor_retention = helm["retention"]["sensor"]["purgeAfterDays"]
    assert {k: v for k, v in sensor_retention.items() if k != "started"} == (
        profile["retention"]["sensor"]["purge_after_days"]
    )
    assert helm["telemetry"] == profile["telemetry"]
    assert helm["additionalInstanceConfig"]["nux"] == profile["nux"]


def test_the_helm_code_location_is_this_package() -> None:
    [deployment] = load(HELM)["dagster-user-deployments"]["deployments"]
    assert deployment["name"] == "factflow"  # the CLI's and the API's default location
    module = deployment["dagsterApiGrpcArgs"][deployment["dagsterApiGrpcArgs"].index("-m") + 1]
    assert module == "factflow_replay_dagster.defs.location"
    __import__(module)


def test_the_guide_names_every_variable_the_profile_reads() -> None:
    guide = GUIDE.read_text()
    missing = [name for name in profile_variables() if f"`{name}`" not in guide]
    assert not missing, f"docs/deployment.md does not describe {missing}"


@pytest.mark.filterwarnings("ignore::dagster.BetaWarning")  # merge re-creates the sensors
def test_a_location_module_can_choose_the_executor(tmp_path: Path) -> None:
    # The guide's recipe for k8s_job_executor, with a stand-in executor of another config
    # schema: every job runs on it, and a sharded replay's run config is still valid.
    pods = dg.in_process_executor.configured({}, name="pods")
    defs = build_definitions(Settings.from_env({"FACTFLOW_HOME": str(tmp_path)}), executor=pods)
    assert all(job.executor_def is pods for job in defs.resolve_all_job_defs())
    config = {"source_execution_id": "e", "from_stage": "s", "to_route": "r", "shards": 4}
    assert dg.validate_run_config(defs.resolve_job_def("replay_job"), config)
