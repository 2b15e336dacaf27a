"""The storage ceilings: obstore gets on 8 threads, a plain folder read loop, and listing rates.

No broker here. Keys are listed before timing for the get and read loops; the listing rows
time the listing itself: obstore's own, the project's store (built through ``connect``), and
a plain sorted ``scandir`` with ``stat`` for the folder (what a listing must at least do).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from factflow_replay_dagster.layout import stage_prefix

from .common import FROM_STAGE, SOURCE_ROUTE, Context, Dataset, Meter, settings

THREADS = 8


def obstore_store(ctx: Context) -> Any:
    """An obstore ``S3Store`` on the lab's SeaweedFS (endpoint given twice: see obstore's
    environment caveat, where ``AWS_ENDPOINT_URL_S3`` would otherwise win)."""
    from obstore.store import S3Store

    s3 = ctx["s3"]
    return S3Store(
        s3["bucket"],
        config={
            "endpoint": s3["endpoint"],
            "aws_endpoint_url_s3": s3["endpoint"],
            "region": s3["region"],
            "access_key_id": s3["key"],
            "secret_access_key": s3["secret"],
        },
        client_options={"allow_http": True},
    )


def _prefix(data: Dataset, storage: str) -> str:
    return stage_prefix(data.parent(storage), SOURCE_ROUTE, FROM_STAGE)


def obstore_get(ctx: Context, *, count: int, size: int) -> dict[str, Any]:
    """Concurrent ``obstore.get`` of every object of the data set on 8 threads."""
    import obstore

    data = Dataset(count, size)
    store = obstore_store(ctx)
    keys = [m["path"] for chunk in obstore.list(store, _prefix(data, "s3")) for m in chunk]
    assert len(keys) == count, (len(keys), count)

    def get(key: str) -> int:
        return len(obstore.get(store, key).bytes())

    with Meter(ctx) as meter, ThreadPoolExecutor(THREADS) as pool:
        total = sum(pool.map(get, keys))
    assert total == count * size
    return meter.result(count, size)


def local_read(ctx: Context, *, count: int, size: int) -> dict[str, Any]:
    """A plain loop: open and read each file of the data set, one after the other."""
    data = Dataset(count, size)
    folder = os.path.join(ctx["local_root"], _prefix(data, "local"))  # noqa: PTH118
    paths = [os.path.join(folder, name) for name in sorted(os.listdir(folder))]  # noqa: PTH118,PTH208
    total = 0
    with Meter(ctx) as meter:
        for path in paths:
            with open(path, "rb") as handle:  # noqa: PTH123
                total += len(handle.read())
    assert total == count * size
    return meter.result(count, size)


def list_obstore(ctx: Context, *, count: int, size: int) -> dict[str, Any]:
    """obstore's own streamed listing of the data set's prefix."""
    import obstore

    data = Dataset(count, size)
    store = obstore_store(ctx)
    with Meter(ctx) as meter:
        listed = sum(len(chunk) for chunk in obstore.list(store, _prefix(data, "s3")))
    assert listed == count
    return meter.result(count, 0)


def list_project(ctx: Context, *, count: int, size: int, storage: str) -> dict[str, Any]:
    """The project's ``ArtefactStore.list`` (from ``connect.open_artefact_store``)."""
    from factflow_replay_dagster.connect import open_artefact_store

    data = Dataset(count, size)
    cfg = settings(ctx, storage=storage, broker="rabbitmq")
    with open_artefact_store(cfg) as store, Meter(ctx) as meter:
        listed = sum(1 for _ in store.list(_prefix(data, storage)))
    assert listed == count
    return meter.result(count, 0)


def list_scandir(ctx: Context, *, count: int, size: int) -> dict[str, Any]:
    """A plain sorted ``scandir`` of the folder with a ``stat`` per file (size, mtime)."""
    data = Dataset(count, size)
    folder = os.path.join(ctx["local_root"], _prefix(data, "local"))  # noqa: PTH118
    with Meter(ctx) as meter, os.scandir(folder) as entries:
        found = sorted((e.name, e.stat().st_size) for e in entries)
    assert len(found) == count
    return meter.result(count, 0)
