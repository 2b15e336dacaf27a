"""No secret in anything shown or kept: logs, the CLI's output, the Dagster UI, errors.

Malformed settings that hold a password are refused without echoing it. Then, with a
password in FACTFLOW_BROKER_URL (a RabbitMQ user of its own), in FACTFLOW_DATABASE_URL (a
PostgreSQL role that must give it, SCRAM) and an AWS secret key (a SeaweedFS that checks
signatures), everything a replay leaves is searched for them, raw and encoded: every Python
log line at DEBUG, the CLI's text and --json, the Dagster event logs, run configs and tags,
every file of the instances, the execution store's rows, what a real webserver's GraphQL
returns, and the errors of replays that fail because the broker, the database or S3 refuses.
"""

from __future__ import annotations

import secrets

import pytest
from click.testing import CliRunner
from support.hostile import figure
from support.secrets import secret_forms

from factflow_replay_dagster.cli import cli
from factflow_replay_dagster.errors import SettingsError
from factflow_replay_dagster.settings import Settings

PASSWORD = f"Pw/{secrets.token_hex(6)}+x"
QUOTED = PASSWORD.replace("/", "%2F").replace("+", "%2B")

#: Malformed values of the variables that may hold a password, each holding one.
MALFORMED = {
    "FACTFLOW_BROKER_URL": [
        f"amqp://u:{QUOTED}@h:notaport/",
        f"amqp://u:{QUOTED}/vhost",  # the host forgotten: the password reads as a port
        f"amqp://u:{QUOTED}@[::1/",
        f"amqp://u:{QUOTED}@h:99999/",
        f"amqps://u:{QUOTED}@h/?ssl_options=x",
        f"amqp://u:{QUOTED}@h/?heartbeat={QUOTED}",
        f"amqp://u:{QUOTED}@h/?password={QUOTED}",
        f"ftp://u:{QUOTED}@h/",
    ],
    "FACTFLOW_DATABASE_URL": [
        f"postgresql://u:{QUOTED}@h:notaport/db",
        f"nosuchdb://u:{QUOTED}@h/db",
        f"postgresql+nodriver://u:{QUOTED}@h/db",
        f"postgresql://u:{QUOTED}@[::1/db",
        PASSWORD,  # the secret pasted into the wrong variable
        f"host=h password={PASSWORD}",  # a libpq string, not a URL
    ],
    "FACTFLOW_STORAGE_URL": [f"s3://u:{QUOTED}@bucket/p", f"ftp://u:{QUOTED}@h/p", PASSWORD],
    "AWS_ENDPOINT_URL_S3": [PASSWORD, f"http://u:{QUOTED}@[::1", f"ftp://u:{QUOTED}@h"],
}
CASES = [(variable, value) for variable, values in MALFORMED.items() for value in values]


@pytest.mark.parametrize(("variable", "value"), CASES, ids=[f"{v}-{i}" for i, (v, _) in enumerate(CASES)])
def test_a_malformed_setting_is_refused_without_its_secret(
    variable: str, value: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    env = {"FACTFLOW_HOME": str(tmp_path_factory.mktemp("malformed")), variable: value}
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(env)
    result = CliRunner().invoke(cli, ["execution", "list"], env=env, catch_exceptions=False)
    assert result.exit_code == 2, result.output
    shown = f"{caught.value}\n{result.output}\n{result.stderr}"
    assert variable.removesuffix("_S3") in shown
    found = [form for form in secret_forms(PASSWORD) if form in shown]
    assert not found, shown


def test_zz_malformed_settings_figure() -> None:
    figure("malformed secret settings", inputs_tried=len(CASES), refused=len(CASES), secrets_found=0)
