"""TLS and least privilege on RabbitMQ, on a node of this module's own with a TLS listener
whose certificate a CA made by the test signed: ``amqps://`` trusting that CA through
``FACTFLOW_BROKER_CA_FILE``, a certificate no trusted CA signed refused clearly, a replay
with exactly the permissions ``docs/security.md`` gives it, and users without them refused
clearly. Each test prints what it checked."""

from __future__ import annotations

import json
import re
import secrets
import shlex
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pika
import pytest
from click.testing import CliRunner, Result
from support.broker_faults import QUEUE, receive, replay_of
from support.faults import StoredParent, record_figures, stored_parent
from support.servers.rabbitmq import RabbitMQServer
from support.tls import make_ca, server_certificate

from factflow_replay_dagster.cli import cli
from factflow_replay_dagster.connect import (
    open_artefact_store,
    open_execution_store,
    open_publisher,
)
from factflow_replay_dagster.errors import EXIT_BROKER, BrokerAccessError, SettingsError
from factflow_replay_dagster.executions import ExecutionStore, ReplayState
from factflow_replay_dagster.queues.base import RetryPolicy
from factflow_replay_dagster.queues.rabbitmq import RabbitMQConsumer, RabbitMQPublisher
from factflow_replay_dagster.replay import DetachedReplayService
from factflow_replay_dagster.settings import Settings
from factflow_replay_dagster.storage.base import ArtefactStore

pytestmark = [pytest.mark.rabbitmq]

PARENT = "parent-broker-security"
COUNT = 2_000
SECURITY_MD = Path(__file__).resolve().parents[2] / "docs" / "security.md"
#: Retries that would take minutes if a refusal were retried; refusals must not be.
PATIENT = RetryPolicy(max_retries=10, interval_start=2.0, interval_step=2.0, interval_max=10.0)


@dataclass
class Lab:
    broker: RabbitMQServer
    ca: Path
    other_ca: Path
    settings: Settings
    parent: StoredParent
    artefacts: ArtefactStore
    executions: ExecutionStore

    def fresh_queue(self) -> None:
        connection = pika.BlockingConnection(pika.URLParameters(self.broker.url))
        try:
            channel = connection.channel()
            channel.queue_delete(QUEUE)
            channel.queue_declare(QUEUE, durable=True)
        finally:
            connection.close()

    def user(self, permissions: tuple[str, str, str] | None) -> tuple[str, str]:
        """A new user with a distinctive password and ``permissions`` (configure, write,
        read regexes) on vhost ``/`` (None: none at all); its (name, password)."""
        name = f"user-{uuid.uuid4().hex[:8]}"
        password = f"Pw-{secrets.token_hex(12)}"
        self.broker.ctl("add_user", name, password)
        if permissions is not None:
            self.broker.ctl("set_permissions", "-p", "/", name, *permissions)
        return name, password

    def service(self, url: str) -> DetachedReplayService:
        return DetachedReplayService(
            artefacts=self.artefacts,
            executions=self.executions,
            publisher=RabbitMQPublisher(url, retry=PATIENT),
        )


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    folder = tmp_path_factory.mktemp("broker-security")
    ca = make_ca(folder / "ca", "factflow-test-ca")
    other_ca, _ = make_ca(folder / "other-ca", "some-other-ca")
    broker = RabbitMQServer(folder / "rabbitmq", tls=server_certificate(folder / "server", ca))
    broker.start()
    settings = Settings.from_env(
        {"FACTFLOW_HOME": str(folder / "home"), "FACTFLOW_BROKER_URL": broker.url}
    )
    try:
        parent = stored_parent(settings, PARENT, COUNT)
        with (
            open_artefact_store(settings) as artefacts,
            open_execution_store(settings) as executions,
        ):
            yield Lab(broker, ca[0], other_ca, settings, parent, artefacts, executions)
    finally:
        broker.stop()


def run_cli(lab: Lab, monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> Result:
    """``factflow-replay execution replay PARENT ...`` in-process, on the lab's home."""
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    args = ["execution", "replay", PARENT, "--from-stage", "parse", "--to-route", "enrich"]
    return CliRunner().invoke(
        cli,
        [*args, "--json"],
        env={"FACTFLOW_HOME": str(lab.settings.home), **env},
        catch_exceptions=False,
    )


# -- TLS ---------------------------------------------------------------------------------------


def test_a_cli_replay_over_amqps_trusts_the_ca_of_the_setting(
    lab: Lab, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    lab.fresh_queue()
    user, password = lab.user((".*", ".*", ".*"))
    url = lab.broker.amqp_url(user, password, tls=True)
    result = run_cli(
        lab, monkeypatch, {"FACTFLOW_BROKER_URL": url, "FACTFLOW_BROKER_CA_FILE": str(lab.ca)}
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    received = receive(lab.broker.url, QUEUE)
    record_figures(
        request,
        "A CLI replay over amqps:// with FACTFLOW_BROKER_CA_FILE (a CA made by the test)",
        **{
            "broker": f"amqps://{user}@127.0.0.1:{lab.broker.tls_port}/%2F",
            "confirmed": summary["replay"]["confirmed"],
            "received by an independent consumer": len(received.artefact_ids),
            "messages lost": len(lab.parent.message_ids - received.unique),
        },
    )
    assert summary["replay"]["confirmed"] == COUNT
    assert received.unique == lab.parent.message_ids
    assert received.duplicates == 0


@pytest.mark.parametrize("trusted", ["another CA", "the system's CAs only"])
def test_a_broker_certificate_no_trusted_ca_signed_is_refused_clearly(
    lab: Lab, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest, trusted: str
) -> None:
    lab.fresh_queue()
    replays_before = len(lab.executions.list_replays())
    user, password = lab.user((".*", ".*", ".*"))
    env = {
        "FACTFLOW_BROKER_URL": lab.broker.amqp_url(user, password, tls=True),
        # Refusals are not retried: with retries this patient, a retry would take minutes.
        "FACTFLOW_BROKER_MAX_RETRIES": "10",
        "FACTFLOW_BROKER_INTERVAL_START": "5",
    }
    if trusted == "another CA":
        env["FACTFLOW_BROKER_CA_FILE"] = str(lab.other_ca)
    result = run_cli(lab, monkeypatch, env)
    shown = result.output + result.stderr
    said = next(line for line in shown.splitlines() if "TLS certificate is not trusted" in line)
    record_figures(
        request,
        f"amqps:// to a broker whose CA is not trusted ({trusted})",
        **{"exit code": result.exit_code, "said": said.strip()},
    )
    assert result.exit_code == EXIT_BROKER
    assert f"amqps://{user}@127.0.0.1:{lab.broker.tls_port}/%2F" in said  # names the broker
    assert "(not retried)" in said
    assert "FACTFLOW_BROKER_CA_FILE" in said  # says what to fix
    assert "Traceback" not in shown
    assert "pika" not in shown
    assert password not in shown
    assert len(lab.executions.list_replays()) == replays_before  # refused in the plan
    assert receive(lab.broker.url, QUEUE).artefact_ids == []


def test_the_ca_file_setting_is_checked_before_anything_connects(tmp_path: Path) -> None:
    url = "amqps://user:Pw-s3cret@broker.example:5671/factflow"
    with pytest.raises(SettingsError, match="FACTFLOW_BROKER_CA_FILE") as plain:
        Settings.from_values(
            broker_url=url.replace("amqps", "amqp"), broker_ca_file="/etc/ssl/certs/x.pem"
        )
    assert "FACTFLOW_BROKER_URL is not amqps://" in str(plain.value)
    not_pem = tmp_path / "ca.der"
    not_pem.write_bytes(b"0\x82\x01\x0a not a PEM certificate")
    for path in (tmp_path / "missing.pem", not_pem):
        settings = Settings.from_values(broker_url=url, broker_ca_file=str(path))
        with pytest.raises(SettingsError, match="FACTFLOW_BROKER_CA_FILE") as caught:
            open_publisher(settings)
        assert str(path) in str(caught.value)
        assert caught.value.exit_code == 2
        assert "s3cret" not in str(caught.value)


# -- least privilege ---------------------------------------------------------------------------


def documented_replay_permissions() -> tuple[str, str, str]:
    """The configure, write and read regexes docs/security.md gives the replay's user (the
    ``rabbitmqctl set_permissions`` line of its replay user, whatever its vhost and name)."""
    text = SECURITY_MD.read_text()
    block = text.split("<!-- replay permissions: tests/faults/test_broker_security.py -->", 1)[1]
    line = next(
        line for line in block.splitlines() if line.startswith("rabbitmqctl set_permissions")
    )
    words = shlex.split(line)
    return words[-3], words[-2], words[-1]


def test_a_replay_works_with_exactly_the_documented_permissions_and_can_do_no_more(
    lab: Lab, request: pytest.FixtureRequest
) -> None:
    permissions = documented_replay_permissions()
    lab.fresh_queue()
    user, password = lab.user(permissions)
    url = lab.broker.amqp_url(user, password)
    service = lab.service(url)
    try:
        result = service.run(replay_of(PARENT, "least privilege"))
        with pytest.raises(BrokerAccessError, match="ACCESS_REFUSED") as declare:
            service.publisher.declare_queue("not.allowed")  # configure
        with RabbitMQConsumer(url, retry=PATIENT) as consumer:
            stop = threading.Event()
            with pytest.raises(BrokerAccessError, match="ACCESS_REFUSED") as consume:
                next(iter(consumer.consume([QUEUE], stop=stop)))  # read
    finally:
        service.publisher.close()
    received = receive(lab.broker.url, QUEUE)
    record_figures(
        request,
        "A replay as a RabbitMQ user with only the permissions docs/security.md gives it",
        **{
            "configure / write / read": " / ".join(repr(p) for p in permissions),
            "replay": f"{result.state}, {result.confirmed:,} confirmed",
            "received by an independent consumer": len(received.artefact_ids),
            "messages lost": len(lab.parent.message_ids - received.unique),
            "declaring a queue": f"refused: {type(declare.value).__name__}",
            "consuming": f"refused: {type(consume.value).__name__}",
        },
    )
    assert (result.state, result.confirmed) == ("SUCCEEDED", COUNT)
    assert received.unique == lab.parent.message_ids
    assert received.end_markers == 1  # the end marker, published by the same user
    for refused in (declare.value, consume.value):
        assert "(not retried)" in str(refused)
        assert password not in str(refused)


@pytest.mark.parametrize(
    ("case", "permissions", "wrong_password"),
    [
        pytest.param("no write permission", (".*", "^$", ".*"), False, id="no-write"),
        pytest.param("no access to the vhost", None, False, id="no-vhost"),
        pytest.param("a wrong password", (".*", ".*", ".*"), True, id="wrong-password"),
    ],
)
def test_a_user_without_those_permissions_is_refused_clearly(
    lab: Lab,
    request: pytest.FixtureRequest,
    case: str,
    permissions: tuple[str, str, str] | None,
    wrong_password: bool,
) -> None:
    lab.fresh_queue()
    user, password = lab.user(permissions)
    given = f"{password}-wrong" if wrong_password else password
    service = lab.service(lab.broker.amqp_url(user, given))
    replay = replay_of(PARENT, case)
    try:
        with pytest.raises(BrokerAccessError) as caught:
            service.run(replay)
    finally:
        service.publisher.close()
    error = str(caught.value)
    record_figures(
        request,
        f"A replay as a RabbitMQ user with {case}",
        error=type(caught.value).__name__,
        said=error,
    )
    assert f"amqp://{user}@127.0.0.1:{lab.broker.port}/%2F" in error
    assert "(not retried)" in error
    assert caught.value.exit_code == EXIT_BROKER
    assert given not in error
    assert password not in error
    if case == "no write permission":  # the plan passed: the replay failed, at position 0
        assert re.search(r"ACCESS_REFUSED .*exchange 'amq\.default'", error)
        record = lab.executions.get_replay(str(replay.replay_id))
        assert (record.state, record.confirmed) == (ReplayState.FAILED, 0)
    else:  # refused at login: nothing was created
        assert "refused the connection" in error
        assert str(replay.replay_id) not in {r.replay_id for r in lab.executions.list_replays()}
    assert receive(lab.broker.url, QUEUE).artefact_ids == []
