"""The broker ceiling (pika ``SelectConnection``, a window of confirms) and the naive baselines.

The ceiling publishes exactly what the project sends (persistent, ``mandatory``,
``content_type``, ``type``, ``message_id`` and the ``factflow-*`` headers of
``ArtefactHeaders.to_headers``), either prebuilt before timing or with the id and headers made
per message during timing (a plain dict copy and ``artefact_message_id``: the per-message work
a replay cannot avoid). The naive baselines read each object and publish it on a
``BlockingConnection`` with one blocking confirm per message.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pika
import pika.spec
from pika.adapters.select_connection import SelectConnection

from factflow_replay_dagster.layout import stage_prefix
from factflow_replay_dagster.messages import (
    ARTEFACT_TYPE,
    ArtefactHeaders,
    Headers,
    artefact_message_id,
)

from .common import FROM_STAGE, SOURCE_ROUTE, TO_ROUTE, WINDOW, Context, Dataset, Meter

Wire = tuple[bytes, pika.BasicProperties]
OCTETS = "application/octet-stream"


def base_headers(parent: str) -> dict[str, Any]:
    """The headers of one replayed artefact, from the project's own model (built once)."""
    return ArtefactHeaders(
        execution_id="news-replay-bench",
        attempt=1,
        route=TO_ROUTE,
        stage="annotate",
        source_execution_id=parent,
        source_route=SOURCE_ROUTE,
        source_stage=FROM_STAGE,
        object_key="",
        etag="",
        replay_id="replay-bench",
    ).to_headers()


def wire(parent: str, base: dict[str, Any], key: str, etag: str, body: bytes) -> Wire:
    """Body and properties as the project sends them, built from scratch."""
    headers = dict(base)
    headers[Headers.OBJECT_KEY] = key
    headers[Headers.ETAG] = etag
    properties = pika.BasicProperties(
        delivery_mode=pika.DeliveryMode.Persistent,
        message_id=artefact_message_id(parent, key, etag),
        content_type=OCTETS,
        type=ARTEFACT_TYPE,
        headers=headers,
    )
    return body, properties


class WindowedPublisher:
    """pika's asynchronous publisher, reduced to its loop: keep ``window`` confirms in flight."""

    def __init__(self, url: str, queue: str, source: Iterator[Wire], total: int) -> None:
        self.queue, self.source, self.total = queue, source, total
        self.params = pika.URLParameters(url)
        self.channel: Any = None
        self.next_tag, self.floor, self.confirmed = 1, 0, 0
        self.unconfirmed: set[int] = set()
        self.first: float | None = None
        self.error: str | None = None

    def run(self, meter: Meter) -> None:
        def opened(conn: Any) -> None:
            conn.channel(on_open_callback=channel_open)

        def channel_open(channel: Any) -> None:
            self.channel = channel
            channel.add_on_return_callback(lambda *a: self.fail(conn, "returned"))
            channel.confirm_delivery(self.on_confirm, callback=lambda _: started())

        def started() -> None:
            meter.__enter__()  # time from the first publish, not the connection
            self.fill()

        conn = SelectConnection(
            self.params,
            on_open_callback=opened,
            on_close_callback=lambda *a: conn.ioloop.stop(),
        )
        self.conn, self.meter = conn, meter
        conn.ioloop.start()
        if self.error or self.confirmed != self.total:
            raise RuntimeError(f"ceiling: {self.error or 'closed early'} at {self.confirmed}")

    def fill(self) -> None:
        publish = self.channel.basic_publish
        while len(self.unconfirmed) < WINDOW:
            try:
                body, properties = next(self.source)
            except StopIteration:
                return
            publish("", self.queue, body, properties, mandatory=True)
            self.unconfirmed.add(self.next_tag)
            self.next_tag += 1

    def on_confirm(self, frame: Any) -> None:
        method = frame.method
        if not isinstance(method, pika.spec.Basic.Ack):
            self.fail(self.conn, "nacked")
            return
        if self.first is None:
            self.first = time.perf_counter()
        tags = (
            range(self.floor + 1, method.delivery_tag + 1)
            if method.multiple
            else [method.delivery_tag]
        )
        for tag in tags:
            if tag in self.unconfirmed:
                self.unconfirmed.remove(tag)
                self.confirmed += 1
        if method.multiple:
            self.floor = max(self.floor, method.delivery_tag)
        if self.confirmed == self.total:
            self.meter.__exit__()  # the last confirm, before the connection closes
            self.conn.close()
        else:
            self.fill()

    def fail(self, conn: Any, reason: str) -> None:
        self.error = reason
        conn.close()


def _keys(data: Dataset, parent: str) -> list[str]:
    prefix = stage_prefix(parent, SOURCE_ROUTE, FROM_STAGE)
    return [prefix + data.name(i) for i in range(data.count)]


def ceiling(ctx: Context, *, count: int, size: int, per_message: bool) -> dict[str, Any]:
    """Publish ``count`` messages of ``size`` bytes; no storage. ``per_message``: build the id
    and headers during timing; else every body and property object is prebuilt."""
    data = Dataset(count, size)
    parent = data.parent("ceiling")
    body = bytes(size)
    keys = _keys(data, parent)
    etags = [hashlib.md5(key.encode(), usedforsecurity=False).hexdigest() for key in keys]
    base = base_headers(parent)
    if per_message:
        source: Iterator[Wire] = (
            wire(parent, base, k, e, body) for k, e in zip(keys, etags, strict=True)
        )
    else:
        source = iter([wire(parent, base, k, e, body) for k, e in zip(keys, etags, strict=True)])
    meter = Meter(ctx)
    publisher = WindowedPublisher(ctx["rabbitmq_url"], ctx["queue"], source, count)
    publisher.run(meter)
    return meter.result(count, size, first_confirm=publisher.first)


def _naive(
    ctx: Context,
    data: Dataset,
    parent: str,
    listing: Callable[[], list[str]],
    read: Callable[[str], tuple[bytes, str]],
) -> dict[str, Any]:
    connection = pika.BlockingConnection(pika.URLParameters(ctx["rabbitmq_url"]))
    channel = connection.channel()
    channel.confirm_delivery()
    base = base_headers(parent)
    first = None
    try:
        with Meter(ctx) as meter:
            for key in listing():
                body, etag = read(key)
                channel.basic_publish(
                    "", ctx["queue"], *wire(parent, base, key, etag, body), mandatory=True
                )
                first = first or time.perf_counter()
    finally:
        connection.close()
    return meter.result(data.count, data.size, first_confirm=first)


def naive_local(ctx: Context, *, count: int, size: int) -> dict[str, Any]:
    """List the folder, then read and publish each file, one blocking confirm per message."""
    data = Dataset(count, size)
    parent = data.parent("local")
    prefix = stage_prefix(parent, SOURCE_ROUTE, FROM_STAGE)
    folder = Path(ctx["local_root"]) / prefix

    def read(key: str) -> tuple[bytes, str]:
        body = (folder / key[len(prefix) :]).read_bytes()
        return body, hashlib.md5(body, usedforsecurity=False).hexdigest()

    return _naive(
        ctx,
        data,
        parent,
        lambda: [prefix + n for n in sorted(e.name for e in folder.iterdir())],
        read,
    )


def naive_s3(ctx: Context, *, count: int, size: int) -> dict[str, Any]:
    """List with boto3, then ``get_object`` and publish each, one blocking confirm per message."""
    data = Dataset(count, size)
    parent = data.parent("s3")
    client = boto3_client(ctx)
    bucket = ctx["s3"]["bucket"]

    def listing() -> list[str]:
        pages = client.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=stage_prefix(parent, SOURCE_ROUTE, FROM_STAGE)
        )
        return [item["Key"] for page in pages for item in page.get("Contents", [])]

    def read(key: str) -> tuple[bytes, str]:
        answer = client.get_object(Bucket=bucket, Key=key)
        return answer["Body"].read(), answer["ETag"].strip('"')

    return _naive(ctx, data, parent, listing, read)


def boto3_client(ctx: Context) -> Any:
    import boto3
    from botocore.config import Config

    s3 = ctx["s3"]
    return boto3.session.Session().client(
        "s3",
        endpoint_url=s3["endpoint"],
        region_name=s3["region"],
        aws_access_key_id=s3["key"],
        aws_secret_access_key=s3["secret"],
        config=Config(s3={"addressing_style": "path"}, max_pool_connections=16),
    )
