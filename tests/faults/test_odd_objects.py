"""Odd objects replayed end to end into RabbitMQ, from a folder and from S3 (SeaweedFS):
names with spaces, URL syntax, unicode (NFC and NFD both), 255-byte names, a 1,000-byte key
made of segments, 0-byte objects; message ids, headers and bodies exactly right, in S3's key
order. What cannot be stored is refused with a typed error, and an object larger than the
broker accepts is refused in the plan, before anything is published.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterator
from pathlib import Path

import pika
import pika.exceptions
import pytest
from click.testing import CliRunner
from support.environments import drain, queue_depth
from support.faults import figure
from support.snapshots import SNAPSHOT

from factflow_replay_dagster.cli import cli
from factflow_replay_dagster.connect import Components, connect
from factflow_replay_dagster.errors import InvalidIdError, StorageError
from factflow_replay_dagster.layout import stage_prefix
from factflow_replay_dagster.messages import ARTEFACT_TYPE, Headers, artefact_message_id
from factflow_replay_dagster.settings import Settings
from factflow_replay_dagster.storage.base import MAX_KEY_BYTES

pytestmark = [pytest.mark.rabbitmq]

QUEUE = "demo.enrich"  # the queue of route enrich in support.snapshots.SNAPSHOT


def key_of(prefix: str, size: int) -> str:
    """A key of exactly ``size`` UTF-8 bytes under ``prefix``: segments of at most 240 bytes
    (a file name holds 255 on ext4, and SeaweedFS allows no more either), with two-byte
    characters in them, so bytes and characters differ."""
    rest = size - len(prefix.encode())
    segments = []
    while rest > 0:
        take = min(240, rest)
        segment = "é" * (take // 4) + "k" * (take - 2 * (take // 4))
        if rest - take > 0:
            segment = segment[:-1] + "/"  # the '/' is the next segment's boundary
        segments.append(segment)
        rest -= len(segment.encode())
    key = prefix + "".join(segments)
    assert len(key.encode()) == size, (len(key.encode()), size)
    return key


def odd_names() -> dict[str, bytes]:
    """Object names (under a stage prefix) and their bodies."""
    return {
        "with space.json": b'{"odd": "space"}',
        "q?x#y&z=1 %2e%2e.json": b'{"odd": "url syntax"}',
        "ünïcødé-日本語.json": '{"odd": "ünïcødé"}'.encode(),
        "\u00e9-nfc.json": b'{"odd": "nfc"}',
        "e\u0301-nfd.json": b'{"odd": "nfd"}',
        "emoji-\U0001f986.json": b'{"odd": "duck"}',
        "empty.json": b"",
        "also-empty": b"",
        "n" * 250 + ".json": b'{"odd": "a 255-byte name"}',
    }


def store_odd_objects(components: Components, parent: str) -> dict[str, bytes]:
    """The odd objects under ``parent``'s ingest/parse, by key, as another deployment would
    have stored them."""
    prefix = stage_prefix(parent, "ingest", "parse")
    objects = {prefix + name: body for name, body in odd_names().items()}
    objects[key_of(prefix, 1000)] = b'{"odd": "a 1,000-byte key"}'
    for key, body in objects.items():
        components.artefacts.write(key, body)
    return objects


@pytest.fixture(params=["folder", "s3"])
def env(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """RabbitMQ, and a folder with SQLite or S3 (SeaweedFS) with PostgreSQL, in os.environ."""
    rabbitmq = request.getfixturevalue("rabbitmq_server")
    values = {"FACTFLOW_HOME": str(tmp_path / "home"), "FACTFLOW_BROKER_URL": rabbitmq.url}
    if request.param == "s3":
        seaweedfs = request.getfixturevalue("seaweedfs_server")
        postgres = request.getfixturevalue("postgres_server")
        bucket = seaweedfs.create_bucket(f"odd-{secrets.token_hex(4)}")
        values |= {
            "FACTFLOW_STORAGE_URL": f"s3://{bucket}/odd",
            "FACTFLOW_DATABASE_URL": postgres.create_database(f"odd_{secrets.token_hex(4)}"),
            "AWS_ENDPOINT_URL_S3": seaweedfs.endpoint_url,
            "AWS_ACCESS_KEY_ID": seaweedfs.access_key,
            "AWS_SECRET_ACCESS_KEY": seaweedfs.secret_key,
            "AWS_REGION": seaweedfs.region_name,
        }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    with connect(Settings.from_env(values)) as components:
        components.publisher.declare_queue(QUEUE)
    drain(rabbitmq.url, QUEUE)
    return values


def register(tmp_path: Path, parent: str) -> None:
    snapshot = tmp_path / "demo.yaml"
    snapshot.write_text(SNAPSHOT)
    result = CliRunner().invoke(
        cli,
        ["execution", "register", "--snapshot", str(snapshot), "--id", parent],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output


def add_folder_markers(request: pytest.FixtureRequest, env: dict[str, str], prefix: str) -> int:
    """On S3, the empty ``<name>/`` objects an S3 console's "create folder" leaves: not
    objects of the stage (a folder store has folders, no such objects)."""
    if not env.get("FACTFLOW_STORAGE_URL", "").startswith("s3://"):
        return 0
    bucket, _, root = env["FACTFLOW_STORAGE_URL"][len("s3://") :].partition("/")
    client = request.getfixturevalue("seaweedfs_server").client()
    markers = [f"{root}/{prefix}a-folder/", f"{root}/{prefix}zz-empty-folder/"]
    for marker in markers:
        client.put_object(Bucket=bucket, Key=marker, Body=b"")
    client.close()
    return len(markers)


def test_odd_objects_are_replayed_with_exact_ids_and_headers(
    request: pytest.FixtureRequest, env: dict[str, str], tmp_path: Path
) -> None:
    parent = f"odd-{secrets.token_hex(4)}"
    with connect(Settings.from_env(env)) as components:
        objects = store_odd_objects(components, parent)
    markers = add_folder_markers(request, env, stage_prefix(parent, "ingest", "parse"))
    register(tmp_path, parent)
    result = CliRunner().invoke(
        cli,
        [
            "execution",
            "replay",
            parent,
            "--from-stage",
            "parse",
            "--to-route",
            "enrich",
            "--json",
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    messages = drain(env["FACTFLOW_BROKER_URL"], QUEUE)
    artefacts = [(p, body) for p, body in messages if p.type == ARTEFACT_TYPE]
    assert len(artefacts) == len(objects)
    assert len(messages) == len(objects) + 1  # and the end marker
    keys = [p.headers[Headers.OBJECT_KEY] for p, _ in artefacts]
    assert sorted(keys) == sorted(objects)
    with connect(Settings.from_env(env)) as components:  # in the store's listing order:
        prefix = stage_prefix(parent, "ingest", "parse")  # UTF-8 byte order (SeaweedFS
        assert keys == list(components.artefacts.list_keys(prefix))  # walks directories)
    if "FACTFLOW_STORAGE_URL" not in env:
        assert keys == sorted(objects, key=lambda k: k.encode())
    for properties, body in artefacts:
        key = properties.headers[Headers.OBJECT_KEY]
        etag = hashlib.md5(objects[key]).hexdigest()
        assert body == objects[key]
        assert properties.headers[Headers.ETAG] == etag
        assert properties.message_id == artefact_message_id(parent, key, etag)
        assert properties.headers[Headers.SOURCE_EXECUTION] == parent
        assert properties.delivery_mode == 2
    with connect(Settings.from_env(env)) as components:
        [replay] = components.executions.list_replays(source_execution_id=parent)
        assert (replay.state.value, replay.confirmed) == ("SUCCEEDED", len(objects))
        assert replay.last_confirmed_key == keys[-1]
    longest = max(len(k.encode()) for k in keys)
    figure(
        f"odd objects ({'S3' if 'FACTFLOW_STORAGE_URL' in env else 'folder'})",
        objects_replayed=len(artefacts),
        zero_byte=sum(1 for _, body in artefacts if not body),
        longest_key_bytes=longest,
        folder_markers_skipped=markers,
        wrong_ids_or_headers=0,
    )


def test_keys_neither_store_can_hold_are_refused_with_a_typed_error(env: dict[str, str]) -> None:
    """A file name holds 255 bytes on a folder (ext4) and on SeaweedFS; AWS S3 would take one
    segment of 1,000 bytes, but no store takes a key over 1,024 (S3's limit, and the
    execution store's key columns)."""
    prefix = stage_prefix("odd-refused", "ingest", "parse")
    with connect(Settings.from_env(env)) as components:
        store = components.artefacts
        for key in (prefix + "s" * 256, prefix + "x" * 1000, key_of(prefix, MAX_KEY_BYTES + 1)):
            with pytest.raises((InvalidIdError, StorageError)) as caught:
                store.write(key, b"x")
            assert key[:40] in str(caught.value)


# -- larger than the broker accepts ------------------------------------------------------------

LIMIT = 1024 * 1024


@pytest.fixture
def small_broker_limit(request: pytest.FixtureRequest) -> Iterator[str]:
    """RabbitMQ's max_message_size set to 1 MiB for the test (then its default again)."""
    rabbitmq = request.getfixturevalue("rabbitmq_server")
    rabbitmq.ctl("eval", f"application:set_env(rabbit, max_message_size, {LIMIT}).")
    try:
        yield rabbitmq.url
    finally:
        rabbitmq.ctl("eval", "application:set_env(rabbit, max_message_size, 134217728).")


def test_the_broker_really_refuses_a_message_over_its_limit(small_broker_limit: str) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(small_broker_limit))
    try:
        channel = connection.channel()
        channel.queue_declare(QUEUE, durable=True)
        channel.confirm_delivery()
        with pytest.raises(pika.exceptions.ChannelClosedByBroker, match="max size"):
            channel.basic_publish("", QUEUE, b"x" * (LIMIT + 1))
    finally:
        connection.close()


def test_an_object_over_the_broker_limit_is_refused_in_the_plan(
    env: dict[str, str], small_broker_limit: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FACTFLOW_BROKER_MAX_MESSAGE_BYTES", str(LIMIT))
    parent = f"big-{secrets.token_hex(4)}"
    prefix = stage_prefix(parent, "ingest", "parse")
    with connect(Settings.from_env(env)) as components:
        components.artefacts.write(prefix + "a-small.json", b"{}")
        components.artefacts.write(prefix + "b-big.bin", b"x" * (LIMIT + 1))
        components.artefacts.write(prefix + "c-small.json", b"{}")
    register(tmp_path, parent)
    result = CliRunner().invoke(
        cli,
        ["execution", "replay", parent, "--from-stage", "parse", "--to-route", "enrich"],
        catch_exceptions=False,
    )
    assert result.exit_code == 2, result.output
    assert "b-big.bin" in result.stderr
    assert "1,048,577 bytes" in result.stderr
    assert "nothing was published" in result.stderr
    assert queue_depth(small_broker_limit, QUEUE) == 0
    with connect(Settings.from_env(env)) as components:
        assert components.executions.list_replays(source_execution_id=parent) == []
    store = "S3" if env.get("FACTFLOW_STORAGE_URL", "").startswith("s3://") else "folder"
    figure(f"object over the broker's limit ({store})", objects=3, refused_in_plan=1, published=0)


def test_a_key_too_long_to_read_back_is_refused_in_the_plan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Files another tool put in a folder store can make a key longer than 1,024 bytes from
    segments of 255: it is refused before anything is published, not when reached."""
    env = {"FACTFLOW_HOME": str(tmp_path / "home")}
    monkeypatch.setenv("FACTFLOW_HOME", env["FACTFLOW_HOME"])
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    parent = "long-keys"
    prefix = stage_prefix(parent, "ingest", "parse")
    with connect(Settings.from_env(env)) as components:
        components.publisher.declare_queue(QUEUE)
        components.artefacts.write(prefix + "a-fine.json", b"{}")
        root = components.artefacts.root  # type: ignore[attr-defined]
        too_long = key_of(prefix + "b/", MAX_KEY_BYTES + 100)
        (root / too_long).parent.mkdir(parents=True)
        (root / too_long).write_bytes(b"{}")
    register(tmp_path, parent)
    result = CliRunner().invoke(
        cli,
        ["execution", "replay", parent, "--from-stage", "parse", "--to-route", "enrich"],
        catch_exceptions=False,
    )
    assert result.exit_code == 2, result.output
    assert "1,124 bytes (UTF-8), at most 1,024" in result.stderr
    with connect(Settings.from_env(env)) as components:
        assert components.publisher.depth(QUEUE) == 0  # type: ignore[attr-defined]
