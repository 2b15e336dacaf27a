"""No secret in anything shown or kept: logs, the CLI's output, the Dagster UI, errors.

Malformed settings that hold a password are refused without echoing it. Then, with a
password in FACTFLOW_BROKER_URL (a RabbitMQ user of its own), one in FACTFLOW_DATABASE_URL (a
PostgreSQL role of its own; the test server trusts loopback, so nothing checks it, but every
component is given it) and an AWS secret key (a SeaweedFS that checks signatures), everything
replays leave is searched for them, raw and encoded: every Python log line at DEBUG, the CLI's
text and --json (at -vv too), what a real webserver's GraphQL returns of the runs (run config,
tags, every event with its metadata and errors), the webserver's and daemon's own log, every
file of the Dagster instance, the execution store's rows, and the errors of replays that fail
because the broker, S3 or the database refuses (given wrong secrets, searched for as well).
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import pika
import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result
from dagster_graphql import DagsterGraphQLClient
from support.faults import StoredParent, record_figures, stored_parent
from support.secrets import secret_forms
from support.servers.dagster_dev import DagsterDev
from support.servers.postgres import PostgresServer
from support.servers.rabbitmq import RabbitMQServer
from support.servers.seaweedfs import SeaweedFSServer

from factflow_replay_dagster.cli import cli
from factflow_replay_dagster.errors import (
    EXIT_BAD_INPUT,
    EXIT_BROKER,
    EXIT_FAILURE,
    SettingsError,
)
from factflow_replay_dagster.settings import Settings

ROOT = Path(__file__).resolve().parents[2]

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


@pytest.mark.parametrize(
    ("variable", "value"), CASES, ids=[f"{v}-{i}" for i, (v, _) in enumerate(CASES)]
)
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


# -- everything a deployment shows and keeps -----------------------------------------------------

BROKER_PASSWORD = f"Br/{secrets.token_hex(8)}+k"
DATABASE_PASSWORD = f"Db/{secrets.token_hex(8)}+k"
AWS_SECRET = f"Aws/{secrets.token_hex(12)}+k"
#: Wrong secrets the failing replays are given: an error must not echo those either.
WRONG_BROKER_PASSWORD = f"Wb/{secrets.token_hex(8)}+k"
WRONG_AWS_SECRET = f"Wa/{secrets.token_hex(12)}+k"
SECRETS = {
    "broker password": BROKER_PASSWORD,
    "database password": DATABASE_PASSWORD,
    "AWS secret key": AWS_SECRET,
    "wrong broker password": WRONG_BROKER_PASSWORD,
    "wrong AWS secret key": WRONG_AWS_SECRET,
}
PARENT = "parent-secrets"
QUEUE = "news.enrich"  # where the news snapshot routes enrich
REPLAY = ["execution", "replay", PARENT, "--from-stage", "parse", "--to-route", "enrich"]


class Everything(logging.Handler):
    """Every log record of the process, formatted with its traceback, at DEBUG."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@dataclass
class Deployment:
    """A stored parent on S3, a broker user, a database role, and a webserver on them all."""

    env: dict[str, str]
    parent: StoredParent
    dev: DagsterDev
    broker: RabbitMQServer
    database_url: str
    logs: Everything
    shown: dict[str, str] = field(default_factory=dict)  # where → what it showed

    def cli(self, *args: str, **env: str) -> Result:
        """The CLI in-process on this deployment (its runs go to the webserver's instance)."""
        result = CliRunner().invoke(cli, list(args), env={**self.env, **env})
        self.shown[f"CLI {' '.join(args)} {sorted(env)}"] = (
            f"{result.output}\n{result.stderr}\n{result.exception!r}"
        )
        return result


@pytest.fixture(scope="module")
def deployment(
    tmp_path_factory: pytest.TempPathFactory,
    rabbitmq_server: RabbitMQServer,
    postgres_server: PostgresServer,
) -> Iterator[Deployment]:
    folder = tmp_path_factory.mktemp("secrets")
    s3 = SeaweedFSServer(folder / "seaweedfs", require_keys=True, secret_key=AWS_SECRET)
    s3.start()
    user = f"secrets-{secrets.token_hex(4)}"
    rabbitmq_server.ctl("add_user", user, BROKER_PASSWORD)
    rabbitmq_server.ctl("set_permissions", "-p", "/", user, ".*", ".*", ".*")
    role, database = f"secrets_{secrets.token_hex(4)}", f"secrets_{secrets.token_hex(4)}"
    postgres_server.psql(f"CREATE ROLE {role} LOGIN PASSWORD '{DATABASE_PASSWORD}'")
    postgres_server.create_database(database)
    postgres_server.psql(f'ALTER DATABASE "{database}" OWNER TO {role}')
    postgres_server.psql(f"ALTER SCHEMA public OWNER TO {role}", database=database)
    host = rabbitmq_server.url.split("@", 1)[1]  # 127.0.0.1:port/...
    database_url = postgres_server.url(database, user=role, password=quote(DATABASE_PASSWORD, ""))
    database_url = database_url.replace("postgresql://", "postgresql+psycopg://", 1)
    env = {
        "FACTFLOW_HOME": str(folder / "home"),
        "FACTFLOW_STORAGE_URL": f"s3://{s3.create_bucket('secrets')}/pipelines",
        "FACTFLOW_BROKER_URL": f"amqp://{user}:{quote(BROKER_PASSWORD, '')}@{host}",
        "FACTFLOW_DATABASE_URL": database_url,
        "AWS_ENDPOINT_URL_S3": s3.endpoint_url,
        "AWS_ACCESS_KEY_ID": s3.access_key,
        "AWS_SECRET_ACCESS_KEY": AWS_SECRET,
        "AWS_REGION": s3.region_name,
    }
    parent = stored_parent(Settings.from_env(env), PARENT, 200)
    connection = pika.BlockingConnection(pika.URLParameters(rabbitmq_server.url))
    connection.channel().queue_declare(QUEUE, durable=True)
    connection.close()
    dev = DagsterDev(ROOT / "workspace.yaml", base_dir=folder / "dev", env=env)
    logs = Everything()
    root = logging.getLogger()
    level, configure = root.level, logging.basicConfig

    def keeping_ours(**kwargs: object) -> None:
        """The CLI's ``basicConfig(force=True)`` drops the root's handlers: ours comes back."""
        configure(**kwargs)  # type: ignore[arg-type]
        root.addHandler(logs)
        root.setLevel(logging.DEBUG)

    keeping_ours()
    try:
        with pytest.MonkeyPatch.context() as monkeypatch:
            monkeypatch.setattr(logging, "basicConfig", keeping_ours)
            dev.start()
            env["DAGSTER_HOME"] = str(dev.home)  # the CLI's runs show in the webserver
            yield Deployment(env, parent, dev, rabbitmq_server, database_url, logs)
    finally:
        root.removeHandler(logs)
        root.setLevel(level)
        dev.stop()
        s3.stop()
        rabbitmq_server.ctl("delete_user", user)


RUNS = """
query { runsOrError { ... on Runs { results { runId jobName status runConfigYaml
  tags { key value } } } } }
"""
EVENTS = """
query($id: ID!) { logsForRun(runId: $id, limit: 100000) {
  ... on EventConnection { events {
    __typename
    ... on MessageEvent { message }
    ... on ErrorEvent { error { ...failure causes { ...failure } } }
    ... on DisplayableEvent { label description metadataEntries { ...entry } }
  } }
  ... on PythonError { message }
} }
fragment failure on PythonError { className message stack }
fragment entry on MetadataEntry {
  label description
  ... on TextMetadataEntry { text }
  ... on JsonMetadataEntry { jsonString }
  ... on MarkdownMetadataEntry { mdStr }
  ... on UrlMetadataEntry { url }
  ... on PathMetadataEntry { path }
  ... on IntMetadataEntry { intRepr }
}
"""


def wait_for_run(dev: DagsterDev, run_id: str, timeout: float = 180) -> str:
    client = DagsterGraphQLClient("127.0.0.1", port_number=dev.port)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.get_run_status(run_id).value
        if status in ("SUCCESS", "FAILURE", "CANCELED"):
            return status
        time.sleep(0.5)
    pytest.fail(f"run {run_id} did not finish:\n{dev.log_tail()}")


def found_in(shown: dict[str, str]) -> list[str]:
    """Each (secret, form, place) found, with a little context."""
    found = []
    for name, secret in SECRETS.items():
        for form in secret_forms(secret):
            for place, text in shown.items():
                at = text.find(form)
                if at >= 0:
                    context = text[max(0, at - 80) : at + len(form) + 20]
                    found.append(f"{name} as {form!r} in {place}: ...{context}...")
    return found


@pytest.mark.rabbitmq
@pytest.mark.s3
@pytest.mark.postgres
def test_no_secret_in_logs_cli_ui_instance_store_or_errors(
    deployment: Deployment, request: pytest.FixtureRequest
) -> None:
    d = deployment
    # Replays that work: in-process from the CLI (text at -vv, JSON), and from the launchpad.
    ok = d.cli("-vv", *REPLAY, "--limit", "50")
    assert ok.exit_code == 0, ok.output
    done = d.cli(*REPLAY, "--limit", "50", "--json")
    assert done.exit_code == 0, done.output
    child = json.loads(done.stdout)["child_execution_id"]
    client = DagsterGraphQLClient("127.0.0.1", port_number=d.dev.port)
    launched = client.submit_job_execution(
        "replay_job",
        repository_location_name="factflow",
        run_config={"source_execution_id": PARENT, "from_stage": "parse", "to_route": "enrich"},
    )
    assert wait_for_run(d.dev, launched) == "SUCCESS", d.dev.log_tail()
    for args in (["execution", "show", child], ["execution", "list"]):
        for extra in ([], ["--json"]):
            assert d.cli(*args, *extra).exit_code == 0
    # Replays that fail: the broker, S3 and the database refuse (wrong secrets, or no server).
    wrong_broker = d.env["FACTFLOW_BROKER_URL"].replace(
        quote(BROKER_PASSWORD, ""), quote(WRONG_BROKER_PASSWORD, "")
    )
    refused = d.cli("-vv", *REPLAY, FACTFLOW_BROKER_URL=wrong_broker)
    assert refused.exit_code == EXIT_BROKER, refused.output
    unsigned = d.cli("-vv", *REPLAY, AWS_SECRET_ACCESS_KEY=WRONG_AWS_SECRET)
    assert unsigned.exit_code not in (0, EXIT_BAD_INPUT), unsigned.output
    port = d.database_url.split("@", 1)[1].split("/", 1)[0]
    closed = d.database_url.replace(port, "127.0.0.1:9")  # nothing listens on port 9
    nowhere = d.cli("-vv", *REPLAY, FACTFLOW_DATABASE_URL=closed)
    assert nowhere.exit_code == EXIT_FAILURE, nowhere.output
    assert "9" in nowhere.output
    # What the UI shows: every run's config, tags and events, as the webserver's GraphQL says.
    runs = d.dev.graphql(RUNS)["runsOrError"]["results"]
    assert len(runs) >= 4
    assert {r["status"] for r in runs} >= {"SUCCESS", "FAILURE"}
    d.shown["GraphQL runs"] = json.dumps(runs)
    for run in runs:
        events = d.dev.graphql(EVENTS, {"id": run["runId"]})
        d.shown[f"GraphQL events of {run['runId']}"] = json.dumps(events)
    # What is kept: the instance's files, the webserver's and daemon's log, the store's rows.
    for path in sorted(Path(d.dev.base_dir).rglob("*")) + sorted(
        Path(d.env["FACTFLOW_HOME"]).rglob("*")
    ):
        if path.is_file():
            d.shown[f"file {path}"] = path.read_bytes().decode("utf-8", "replace")
    engine = sa.create_engine(d.database_url)
    try:
        with engine.connect() as connection:
            for table in sa.inspect(connection).get_table_names():
                rows = connection.execute(sa.text(f'SELECT * FROM "{table}"')).all()
                d.shown[f"table {table}"] = "\n".join(map(repr, rows))
    finally:
        engine.dispose()
    loggers = {line.split(" ", 1)[0].split(".")[0] for line in d.logs.lines}
    assert {"factflow_replay_dagster", "pika"} <= loggers, loggers  # theirs and the libraries'
    assert any(" DEBUG " in line for line in d.logs.lines)
    d.shown["Python logs"] = "\n".join(d.logs.lines)
    found = found_in(d.shown)
    record_figures(
        request,
        "secrets",
        places_searched=len(d.shown),
        characters_searched=sum(map(len, d.shown.values())),
        log_lines=len(d.logs.lines),
        runs=len(runs),
        malformed_settings_tried=len(CASES),
        secrets_found=len(found),
    )
    assert not found, "\n".join(found[:20])
