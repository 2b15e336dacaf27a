"""The package's public surface: sorted exports, loadable definitions, an installable wheel.

Which layer may import which is import-linter's job (``[tool.importlinter]`` in
pyproject.toml, run by scripts/test), not a list kept here.
"""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import factflow_replay_dagster

ROOT = Path(__file__).resolve().parents[1]


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

    from factflow_replay_dagster.defs.resources import build_resources
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
    assert resources["artefacts"].aws_secret_access_key == dg.EnvVar("AWS_SECRET_ACCESS_KEY")
    shown = repr(resources) + str(Settings.from_env(env)) + str(Settings.from_env(env).describe())
    for secret in ("br0ker-s3cret", "db-s3cret", "aws-s3cret"):
        assert secret not in shown


def _uv() -> str:
    found = ROOT / ".cache" / "tools" / "bin" / "uv"  # what scripts/test installs
    return str(found) if found.exists() else "uv"


@pytest.mark.slow
def test_the_wheel_imports_every_module_in_a_clean_venv(tmp_path: Path) -> None:
    """Built and installed with only the default dependencies (no pytest, no dev extras): every
    module it ships imports, and no test server code ships at all."""
    uv = _uv()
    dist, venv = tmp_path / "dist", tmp_path / "venv"
    subprocess.run([uv, "build", "--wheel", "--out-dir", str(dist), str(ROOT)], check=True)
    (wheel,) = dist.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    shipped = [n for n in names if n.startswith("factflow_replay_dagster/")]
    assert not [n for n in shipped if "pytest" in n or n.endswith(("_proc.py", "seaweedfs.py"))]
    requirements = tmp_path / "requirements.txt"
    exported = subprocess.run(
        [uv, "export", "--frozen", "--no-hashes", "--no-emit-project", "--project", str(ROOT)],
        check=True,
        capture_output=True,
        text=True,
    )
    requirements.write_text(exported.stdout)
    subprocess.run([uv, "venv", "--quiet", "--python", sys.executable, str(venv)], check=True)
    python = str(venv / "bin" / "python")
    subprocess.run(
        [uv, "pip", "install", "--quiet", "--python", python, "-r", str(requirements), str(wheel)],
        check=True,
    )
    code = (
        "import importlib, pkgutil, sys, factflow_replay_dagster as p\n"
        "names = [m.name for m in pkgutil.walk_packages(p.__path__, p.__name__ + '.')\n"
        "         if '.migrations.' not in m.name and not m.name.endswith('__main__')]\n"
        "for name in names: importlib.import_module(name)\n"
        "assert 'pytest' not in sys.modules\n"
        "print(len(names))\n"
    )
    result = subprocess.run(
        [python, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert int(result.stdout.split()[-1]) > 40
    missing = subprocess.run([python, "-c", "import pytest"], capture_output=True, check=False)
    assert missing.returncode != 0  # a plain install really has no pytest
