"""Settings pointing at the session's real servers, fresh per test: bucket, database, queues."""

from __future__ import annotations

import itertools
import secrets
from pathlib import Path
from typing import Any

import pika
import pytest

from factflow_replay_dagster.pipelines import SAMPLES
from factflow_replay_dagster.snapshot import ConfigSnapshot

_numbers = itertools.count()


def sample_queues() -> list[str]:
    return [q for path in SAMPLES.values() for q in ConfigSnapshot.load(path).config.queues()]


def reset_queues(amqp_url: str, queues: list[str] | None = None) -> None:
    """Delete the sample pipelines' queues so a test starts from an empty broker."""
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        channel = connection.channel()
        for queue in queues or sample_queues():
            channel.queue_delete(queue)
    finally:
        connection.close()


def queue_depth(amqp_url: str, queue: str) -> int:
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        return int(connection.channel().queue_declare(queue, passive=True).method.message_count)
    finally:
        connection.close()


def drain(amqp_url: str, queue: str) -> list[tuple[Any, bytes]]:
    """Every message on ``queue`` (properties, body), acknowledged: an independent consumer."""
    return _get_all(amqp_url, queue, ack=True)


def peek(amqp_url: str, queue: str) -> list[tuple[Any, bytes]]:
    """Every message on ``queue`` (properties, body), left there: taken unacknowledged and
    requeued, in order, when the connection closes (they come back marked redelivered)."""
    return _get_all(amqp_url, queue, ack=False)


def _get_all(amqp_url: str, queue: str, *, ack: bool) -> list[tuple[Any, bytes]]:
    received = []
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        channel = connection.channel()
        while True:
            method, properties, body = channel.basic_get(queue, auto_ack=False)
            if method is None:
                return received
            received.append((properties, body))
            if ack:
                channel.basic_ack(method.delivery_tag)
    finally:
        connection.close()


def server_env(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """FACTFLOW_* and AWS_* for RabbitMQ + SeaweedFS + PostgreSQL, set in os.environ too
    (boto3 and child processes read them there)."""
    rabbitmq = request.getfixturevalue("rabbitmq_server")
    seaweedfs = request.getfixturevalue("seaweedfs_server")
    postgres = request.getfixturevalue("postgres_server")
    number = next(_numbers)
    bucket = seaweedfs.create_bucket(f"factflow-{number}-{secrets.token_hex(3)}")
    reset_queues(rabbitmq.url)
    env = {
        "FACTFLOW_HOME": str(tmp_path / "home"),
        "FACTFLOW_STORAGE_URL": f"s3://{bucket}/pipelines",
        "FACTFLOW_BROKER_URL": rabbitmq.url,
        "FACTFLOW_DATABASE_URL": postgres.create_database(f"factflow_{number}"),
        "AWS_ENDPOINT_URL_S3": seaweedfs.endpoint_url,
        "AWS_ACCESS_KEY_ID": seaweedfs.access_key,
        "AWS_SECRET_ACCESS_KEY": seaweedfs.secret_key,
        "AWS_REGION": seaweedfs.region_name,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env
