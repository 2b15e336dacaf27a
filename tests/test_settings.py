"""The one settings model: variables and their precedence, clear errors, hidden secrets, and
parity: the CLI and ``definitions.py`` build the same components from one environment."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from pydantic import SecretStr

from factflow_replay_dagster.connect import (
    open_artefact_store,
    open_publisher,
    retry_policy,
    s3_config,
)
from factflow_replay_dagster.defs import build_definitions
from factflow_replay_dagster.errors import SettingsError
from factflow_replay_dagster.queues.embedded import EmbeddedQueue
from factflow_replay_dagster.queues.rabbitmq import RabbitMQPublisher
from factflow_replay_dagster.settings import Settings, env_names


def test_embedded_defaults_under_home(tmp_path: Path) -> None:
    settings = Settings.from_env({"FACTFLOW_HOME": str(tmp_path)})
    assert settings.storage_url == (tmp_path / "artefacts").as_uri()
    assert settings.broker_url.get_secret_value() == str(tmp_path / "queue.db")
    assert settings.database_url.get_secret_value() == f"sqlite:///{tmp_path / 'executions.db'}"
    assert (settings.storage_kind(), settings.broker_kind()) == ("file", "embedded")
    assert settings.aws_region == "us-east-1"
    assert settings.aws_max_attempts == 5


def test_s3_endpoint_wins_over_the_generic_one() -> None:
    both = {"AWS_ENDPOINT_URL": "http://generic:1", "AWS_ENDPOINT_URL_S3": "http://s3:2"}
    assert Settings.from_env(both).aws_endpoint_url == "http://s3:2"
    generic = {"AWS_ENDPOINT_URL": "http://generic:1", "AWS_ENDPOINT_URL_S3": ""}
    assert Settings.from_env(generic).aws_endpoint_url == "http://generic:1"


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
    assert Settings.from_env(environ).aws_region == region


def test_secrets_are_read_and_hidden() -> None:
    settings = Settings.from_env(
        {
            "FACTFLOW_BROKER_URL": "amqp://app:Br0ker-pw@mq:5672/%2F",
            "FACTFLOW_DATABASE_URL": "postgresql+psycopg://app:Db-pw-9@db/factflow",
            "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
            "AWS_SECRET_ACCESS_KEY": "Aws-key-7",
            "AWS_SESSION_TOKEN": "Tok-3",
        }
    )
    config = s3_config(settings)
    assert (config.aws_secret_access_key, config.aws_session_token) == ("Aws-key-7", "Tok-3")
    shown = " ".join(
        [repr(settings), str(settings), str(settings.describe()), repr(config), str(config)]
    )
    for secret in ("Br0ker-pw", "Db-pw-9", "Aws-key-7", "Tok-3"):
        assert secret not in shown
    assert "app:***@mq" in settings.describe()["broker"]


def test_blank_credentials_are_unset() -> None:
    settings = Settings.from_env({"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "  "})
    assert (settings.aws_access_key_id, settings.aws_secret_access_key) == (None, None)


@pytest.mark.parametrize(
    ("environ", "names"),
    [
        ({"FACTFLOW_CONFIRM_WINDOW": "0"}, "FACTFLOW_CONFIRM_WINDOW"),
        ({"FACTFLOW_CONFIRM_WINDOW": "many"}, "FACTFLOW_CONFIRM_WINDOW"),
        # One rule everywhere: a lease of 0 would redeliver every message at once.
        ({"FACTFLOW_EMBEDDED_LEASE_SECONDS": "0"}, "FACTFLOW_EMBEDDED_LEASE_SECONDS"),
        ({"FACTFLOW_AUTO_RECOVERY": "perhaps"}, "FACTFLOW_AUTO_RECOVERY"),
        ({"AWS_MAX_ATTEMPTS": "many"}, "AWS_MAX_ATTEMPTS"),
        ({"AWS_MAX_ATTEMPTS": "0"}, "AWS_MAX_ATTEMPTS"),
        ({"FACTFLOW_STORAGE_URL": "ftp://user:pw-secret@host/x"}, "FACTFLOW_STORAGE_URL"),
        ({"FACTFLOW_BROKER_URL": "kafka://host"}, "FACTFLOW_BROKER_URL"),
    ],
)
def test_bad_values_name_the_variable_and_never_the_secret(
    environ: dict[str, str], names: str
) -> None:
    with pytest.raises(SettingsError, match=names) as caught:
        Settings.from_env(environ)
    assert "pw-secret" not in str(caught.value)
    assert caught.value.exit_code == 2


def test_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9")
    monkeypatch.setenv("FACTFLOW_CONFIRM_WINDOW", "77")
    settings = Settings.from_env()
    assert (settings.aws_endpoint_url, settings.confirm_window) == ("http://127.0.0.1:9", 77)
    default = Settings.model_fields["confirm_window"].default
    assert Settings.from_values().confirm_window == default  # values alone ignore the environment


def test_pipelines_are_a_path_list(tmp_path: Path) -> None:
    settings = Settings.from_env({"FACTFLOW_PIPELINES": f"{tmp_path}/a.yaml:{tmp_path}/b"})
    assert settings.pipelines == (tmp_path / "a.yaml", tmp_path / "b")


# -- parity: one environment, the same components from the CLI and from definitions.py ---------

ENVIRONMENTS: dict[str, dict[str, str]] = {
    "embedded": {"FACTFLOW_EMBEDDED_LEASE_SECONDS": "12.5"},
    "s3-everything": {
        "FACTFLOW_STORAGE_URL": "s3://bucket/prefix",
        "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:8333",
        "AWS_DEFAULT_REGION": "eu-central-1",
        "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "aws-secret",
        "AWS_SESSION_TOKEN": "token",
        "AWS_CA_BUNDLE": "/etc/ssl/certs/ca-certificates.crt",
        "AWS_MAX_ATTEMPTS": "9",
    },
    "s3-defaults": {"FACTFLOW_STORAGE_URL": "s3://bucket", "AWS_ENDPOINT_URL": "http://s3:1"},
    "rabbitmq": {
        "FACTFLOW_BROKER_URL": "amqp://app:broker-secret@127.0.0.1:5672/%2F",
        "FACTFLOW_CONFIRM_WINDOW": "1000",
        "FACTFLOW_BROKER_MAX_RETRIES": "3",
        "FACTFLOW_BROKER_INTERVAL_START": "0.1",
        "FACTFLOW_BROKER_INTERVAL_STEP": "0.2",
        "FACTFLOW_BROKER_INTERVAL_MAX": "0.3",
        "FACTFLOW_DATABASE_URL": "postgresql+psycopg://app:db-secret@127.0.0.1/factflow",
    },
    "rabbitmq-tls": {
        "FACTFLOW_BROKER_URL": "amqps://app:broker-secret@rabbitmq.example:5671/factflow",
        "FACTFLOW_BROKER_CA_FILE": "/etc/ssl/certs/ca-certificates.crt",
    },
}


def _components(settings: Settings) -> dict[str, Any]:
    """What every entry point must agree on, read off the components built from settings."""
    publisher = open_publisher(settings)
    facts: dict[str, Any] = {
        "storage": settings.storage_url,
        "database": settings.database_url.get_secret_value(),
        "retry": retry_policy(settings),
        "progress_every": settings.progress_every,
        "recovery": (settings.recovery_max_attempts, settings.recovery_settle_seconds),
    }
    if isinstance(publisher, RabbitMQPublisher):
        facts |= {
            "window": publisher.window,
            "publisher_retry": publisher.retry,
            "broker_ca_file": publisher.ca_file,
        }
    else:
        assert isinstance(publisher, EmbeddedQueue)
        facts |= {"queue": publisher.path, "lease": publisher.lease_seconds}
    if settings.storage_kind() == "s3":
        facts["s3"] = s3_config(settings)
        open_artefact_store(settings).close()  # builds a client from it: no request is made
    return facts


@pytest.mark.parametrize("name", sorted(ENVIRONMENTS))
def test_the_cli_and_definitions_build_the_same_components(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {"FACTFLOW_HOME": str(tmp_path), **ENVIRONMENTS[name]}
    for variable, value in env.items():
        monkeypatch.setenv(variable, value)  # where the Dagster run reads its EnvVars
    cli = Settings.from_env(env)
    defs = build_definitions(cli)
    resources = defs.resources or {}
    keys = ("artefacts", "queue", "executions")
    resolved = {key: resources[key].process_config_and_initialize() for key in keys}
    # Each resource holds its own settings fields; together they are the whole picture.
    values = {
        field: getattr(resource, field)
        for resource in resolved.values()
        for field in type(resource).model_fields
    }
    assert _components(Settings.from_values(**values)) == _components(cli)
    for resource in resolved.values():  # and each builds from exactly those
        own = resource.settings()
        fields = type(resource).model_fields
        assert {f: getattr(own, f) for f in fields} == {f: getattr(cli, f) for f in fields}
    # And the secrets stayed EnvVars on the Dagster side.
    if "FACTFLOW_BROKER_URL" in env:
        assert resources["queue"].broker_url == dg.EnvVar("FACTFLOW_BROKER_URL")
    if "AWS_SECRET_ACCESS_KEY" in env:
        assert resources["artefacts"].aws_secret_access_key == dg.EnvVar("AWS_SECRET_ACCESS_KEY")


# -- the README's table is the model's ------------------------------------------------------------


def settings_table() -> str:
    """The README's configuration table, rendered from the model (variables, defaults, help)."""
    rows = ["| variable | default | meaning |", "| --- | --- | --- |"]
    for name, info in Settings.model_fields.items():
        meaning = info.description or ""
        default: object = info.default
        if isinstance(default, SecretStr):
            default = default.get_secret_value()
        derived = re.search(r" \(default: (.*)\)\.$", meaning)
        if derived:
            meaning = meaning[: derived.start()] + "."
            shown = derived.group(1)
        elif isinstance(default, bool):
            shown = f"`{str(default).lower()}`"
        elif isinstance(default, Path):
            shown = f"`./{default}`"
        else:
            shown = f"`{default}`"
        variables = " / ".join(f"`{v}`" for v in env_names(name))
        rows.append(f"| {variables} | {shown} | {meaning} |")
    return "\n".join(rows)


def test_the_readme_lists_every_variable_with_the_model_default() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    start, end = (
        "<!-- settings table: tests/test_settings.py -->\n",
        "\n<!-- end of settings table -->",
    )
    shown = readme.split(start, 1)[1].split(end, 1)[0]
    assert shown == settings_table(), (
        "README's table is stale; it should read:\n" + settings_table()
    )
