"""S3Config.from_env reads the standard AWS variables, with their precedence, and hides secrets."""

from __future__ import annotations

import pytest

from factflow_replay_dagster.errors import SettingsError
from factflow_replay_dagster.storage import S3Config


def test_defaults_when_nothing_is_set() -> None:
    config = S3Config.from_env({})
    assert config == S3Config(region_name="us-east-1")
    assert config.endpoint_url is None
    assert config.aws_access_key_id is None
    assert config.aws_secret_access_key is None
    assert config.aws_session_token is None
    assert config.max_attempts == 5


def test_s3_endpoint_wins_over_the_generic_one() -> None:
    both = {"AWS_ENDPOINT_URL": "http://generic:1", "AWS_ENDPOINT_URL_S3": "http://s3:2"}
    assert S3Config.from_env(both).endpoint_url == "http://s3:2"
    assert S3Config.from_env({"AWS_ENDPOINT_URL": "http://generic:1"}).endpoint_url == (
        "http://generic:1"
    )
    empty_s3 = {"AWS_ENDPOINT_URL": "http://generic:1", "AWS_ENDPOINT_URL_S3": ""}
    assert S3Config.from_env(empty_s3).endpoint_url == "http://generic:1"


@pytest.mark.parametrize(
    ("environ", "region"),
    [
        ({"AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "us-west-2"}, "eu-west-1"),
        ({"AWS_DEFAULT_REGION": "us-west-2"}, "us-west-2"),
        ({"AWS_REGION": "", "AWS_DEFAULT_REGION": "ap-south-1"}, "ap-south-1"),
        ({}, "us-east-1"),
    ],
)
def test_region_fallback(environ: dict[str, str], region: str) -> None:
    assert S3Config.from_env(environ).region_name == region


def test_credentials_are_read_and_hidden() -> None:
    config = S3Config.from_env(
        {
            "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
            "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI-secret",
            "AWS_SESSION_TOKEN": "session-token-secret",
        }
    )
    assert config.aws_access_key_id == "AKIDEXAMPLE"
    assert config.aws_secret_access_key == "wJalrXUtnFEMI-secret"
    assert config.aws_session_token == "session-token-secret"
    assert "secret" not in repr(config)
    assert "secret" not in str(config)


def test_missing_or_empty_credentials_are_none() -> None:
    config = S3Config.from_env({"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "  "})
    assert (config.aws_access_key_id, config.aws_secret_access_key) == (None, None)


def test_max_attempts_and_ca_bundle() -> None:
    config = S3Config.from_env({"AWS_MAX_ATTEMPTS": "3", "AWS_CA_BUNDLE": "/etc/ca.pem"})
    assert (config.max_attempts, config.verify) == (3, "/etc/ca.pem")
    with pytest.raises(SettingsError, match="AWS_MAX_ATTEMPTS"):
        S3Config.from_env({"AWS_MAX_ATTEMPTS": "many"})


def test_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    assert S3Config.from_env().endpoint_url == "http://127.0.0.1:9"
