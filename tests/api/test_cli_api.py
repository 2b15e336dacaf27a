"""``factflow-replay api``: the loopback rule, and a CLI whose start does not load the API."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr

from factflow_replay_dagster.api.auth import check_bind, is_loopback
from factflow_replay_dagster.errors import SettingsError


def test_help_imports_no_web_framework_and_no_dagster() -> None:
    code = (
        "import sys\n"
        "from factflow_replay_dagster.cli import cli\n"
        "try:\n"
        "    cli(['api', '--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = [m for m in ('fastapi', 'uvicorn', 'starlette', 'dagster') if m in sys.modules]\n"
        "print('loaded:', heavy)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert "--port" in result.stdout
    assert "loaded: []" in result.stdout


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.53", "::1", "[::1]", "localhost"])
def test_loopback_serves_without_a_token(host: str) -> None:
    assert is_loopback(host)
    check_bind(host, ())


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "example.org", ""])
def test_any_other_address_needs_a_token(host: str) -> None:
    assert not is_loopback(host)
    with pytest.raises(SettingsError, match="FACTFLOW_API_TOKENS"):
        check_bind(host, ())
    check_bind(host, (SecretStr("a-long-enough-token-000"),))


def test_the_command_refuses_a_public_address_without_a_token(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "factflow_replay_dagster.cli", "api", "--host", "0.0.0.0"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env={"FACTFLOW_HOME": str(tmp_path), "PATH": str(Path(sys.executable).parent)},
    )
    assert result.returncode == 2
    assert "refusing to serve the HTTP API on '0.0.0.0' without a token" in result.stderr


def test_a_short_token_is_refused_by_name_and_never_shown(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "factflow_replay_dagster.cli", "api"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env={
            "FACTFLOW_HOME": str(tmp_path),
            "FACTFLOW_API_TOKENS": "sh0rt-s3cret,long-enough-token-0123456789",
            "PATH": str(Path(sys.executable).parent),
        },
    )
    assert result.returncode == 2
    assert "FACTFLOW_API_TOKENS" in result.stderr
    assert "sh0rt-s3cret" not in result.stderr + result.stdout
