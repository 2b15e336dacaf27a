"""The package's public surface: sorted exports, a Dagster-free core, loadable definitions."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import factflow_replay_dagster

ROOT = Path(__file__).resolve().parents[1]
CORE = [
    "storage",
    "queues",
    "executions",
    "replay",
    "runtime",
    "snapshot",
    "messages",
    "layout",
    "settings",
    "connect",
    "errors",
    "ids",
    "pipelines",
]


def test_root_all_is_sorted_and_importable() -> None:
    exported = factflow_replay_dagster.__all__
    assert exported == sorted(exported)
    for name in exported:
        assert getattr(factflow_replay_dagster, name) is not None


@pytest.mark.parametrize(
    "module",
    [
        m.name
        for m in pkgutil.walk_packages(factflow_replay_dagster.__path__, "factflow_replay_dagster.")
        if ".migrations" not in m.name
        and not m.name.endswith(".location")
        and not m.name.endswith("__main__")
    ],
)
def test_every_module_has_a_docstring_and_exports_what_it_has(module: str) -> None:
    """Order within ``__all__`` is ruff's (RUF022); here: it exists and names real things."""
    imported = importlib.import_module(module)
    assert (imported.__doc__ or "").strip(), f"{module} has no docstring"
    if "__all__" in vars(imported):
        missing = [name for name in imported.__all__ if not hasattr(imported, name)]
        assert not missing, f"{module}.__all__ names missing {missing}"


def test_the_core_imports_nothing_from_dagster() -> None:
    imports = "; ".join(f"import factflow_replay_dagster.{m}" for m in CORE)
    code = (
        f"import sys; import factflow_replay_dagster; {imports}; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('dagster', 'dagster_aws'));"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_root_definitions_load_and_every_job_resolves(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("FACTFLOW_HOME", str(tmp_path))
    monkeypatch.syspath_prepend(str(ROOT))
    sys.modules.pop("definitions", None)
    definitions = importlib.import_module("definitions")
    defs = definitions.defs
    for job in defs.jobs or []:
        assert defs.resolve_job_def(job.name).name == job.name
    assert "replay_job" in {job.name for job in defs.jobs or []}


def test_secrets_from_the_environment_stay_envvars_in_the_dagster_resources(tmp_path) -> None:
    import dagster as dg

    from factflow_replay_dagster.resources import build_resources
    from factflow_replay_dagster.settings import Settings

    env = {
        "FACTFLOW_HOME": str(tmp_path),
        "FACTFLOW_BROKER_URL": "amqp://app:br0ker-s3cret@mq:5672/%2F",
        "FACTFLOW_DATABASE_URL": "postgresql+psycopg://app:db-s3cret@db/factflow",
        "FACTFLOW_STORAGE_URL": "s3://bucket/prefix",
        "AWS_SECRET_ACCESS_KEY": "aws-s3cret",
        "AWS_ACCESS_KEY_ID": "AKIA",
    }
    resources = build_resources(Settings.from_env(env), environ=env)
    assert resources["queue"].broker_url == dg.EnvVar("FACTFLOW_BROKER_URL")
    assert resources["executions"].database_url == dg.EnvVar("FACTFLOW_DATABASE_URL")
    assert resources["artefacts"].s3.aws_secret_access_key == dg.EnvVar("AWS_SECRET_ACCESS_KEY")
    shown = repr(resources) + str(Settings.from_env(env)) + str(Settings.from_env(env).describe())
    for secret in ("br0ker-s3cret", "db-s3cret", "aws-s3cret"):
        assert secret not in shown
