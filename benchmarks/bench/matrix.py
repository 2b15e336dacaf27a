"""Which rows one run measures: the place to add rows.

A :class:`Row` names a measurement function (``module:function`` in this package, run in a
child process per repetition), its parameters, the stored data sets it needs, and how the
report should file it. Data sets have roles (``small``, ``large``, ``64k``, ``1m``) so the
targets read the same in ``--quick`` mode, where the sizes shrink.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .common import Dataset

#: Project paths: (storage, broker).
PATHS = (("local", "rabbitmq"), ("s3", "rabbitmq"), ("local", "embedded"))


@dataclass(frozen=True)
class Row:
    """One measured row of docs/performance.md."""

    id: str
    section: str
    label: str
    fn: str
    params: dict[str, Any] = field(default_factory=dict)
    needs: tuple[tuple[str, Dataset], ...] = ()
    reps: int = 3
    role: str = ""  # the data set's role, for rows of the throughput tables
    kind: str = ""  # ceiling, ceiling-headers, storage, naive, service, job, ...
    storage: str = ""
    broker: str = ""


@dataclass(frozen=True)
class Plan:
    """The data sets of one run, by role, and the repetitions per row."""

    datasets: dict[str, Dataset]
    reps: int
    quick: bool

    @classmethod
    def make(cls, *, quick: bool, reps: int | None) -> Plan:
        if quick:
            sets = {
                "small": Dataset(1_000, 1024),
                "large": Dataset(5_000, 1024),
                "64k": Dataset(200, 64 << 10),
                "1m": Dataset(20, 1 << 20),
            }
            return cls(sets, reps or 1, quick)
        sets = {
            "small": Dataset(10_000, 1024),
            "large": Dataset(100_000, 1024),
            "64k": Dataset(5_000, 64 << 10),
            "1m": Dataset(500, 1 << 20),
        }
        return cls(sets, reps or 3, quick)


def _size(data: Dataset) -> dict[str, int]:
    return {"count": data.count, "size": data.size}


def throughput_rows(plan: Plan) -> list[Row]:
    """Ceilings, naive baselines and the project's paths, per data set."""
    rows: list[Row] = []
    for role, data in plan.datasets.items():
        common = {"section": "throughput", "role": role, "reps": plan.reps}
        rows += [
            Row(
                f"ceiling/prebuilt/{data.slug}",
                label="broker ceiling: pika, prebuilt messages",
                fn="broker:ceiling",
                params={**_size(data), "per_message": False},
                kind="ceiling",
                broker="rabbitmq",
                **common,
            ),
            Row(
                f"ceiling/headers/{data.slug}",
                label="broker ceiling: id + headers per message",
                fn="broker:ceiling",
                params={**_size(data), "per_message": True},
                kind="ceiling-headers",
                broker="rabbitmq",
                **common,
            ),
            Row(
                f"storage/obstore/{data.slug}",
                label="storage ceiling: obstore get, 8 threads",
                fn="storage:obstore_get",
                params=_size(data),
                needs=(("s3", data),),
                kind="storage",
                storage="s3",
                **common,
            ),
            Row(
                f"storage/local/{data.slug}",
                label="storage ceiling: folder read loop",
                fn="storage:local_read",
                params=_size(data),
                needs=(("local", data),),
                kind="storage",
                storage="local",
                **common,
            ),
        ]
        if role != "large":  # sequential and per message: 100,000 would take half an hour
            rows += [
                Row(
                    f"naive/s3/{data.slug}",
                    label="naive: boto3 get + blocking confirm",
                    fn="broker:naive_s3",
                    params=_size(data),
                    needs=(("s3", data),),
                    kind="naive",
                    storage="s3",
                    broker="rabbitmq",
                    **common,
                ),
                Row(
                    f"naive/local/{data.slug}",
                    label="naive: file read + blocking confirm",
                    fn="broker:naive_local",
                    params=_size(data),
                    needs=(("local", data),),
                    kind="naive",
                    storage="local",
                    broker="rabbitmq",
                    **common,
                ),
            ]
        for kind in ("service", "job"):
            for storage, broker in PATHS:
                params: dict[str, Any] = {**_size(data), "storage": storage, "broker": broker}
                if broker == "embedded":
                    params["queue_file"] = ""
                name = "DetachedReplayService" if kind == "service" else "replay_job"
                rows.append(
                    Row(
                        f"{kind}/{storage}-{broker}/{data.slug}",
                        label=f"{name}: {_where(storage, broker)}",
                        fn=f"project:{kind}",
                        params=params,
                        needs=((storage, data),),
                        kind=kind,
                        storage=storage,
                        broker=broker,
                        **common,
                    )
                )
    return rows


def _where(storage: str, broker: str) -> str:
    return f"{'folder' if storage == 'local' else 'S3'} → " + (
        "RabbitMQ" if broker == "rabbitmq" else "embedded queue"
    )


def listing_rows(plan: Plan) -> list[Row]:
    rows = []
    for role in ("small", "large"):
        data = plan.datasets[role]
        common = {"section": "listing", "role": role, "reps": plan.reps, "params": _size(data)}
        rows += [
            Row(
                f"list/obstore/{data.slug}",
                label="obstore list (S3)",
                fn="storage:list_obstore",
                needs=(("s3", data),),
                kind="list-ceiling",
                storage="s3",
                **common,
            ),
            Row(
                f"list/project-s3/{data.slug}",
                label="project store list (S3)",
                fn="storage:list_project",
                needs=(("s3", data),),
                kind="list",
                storage="s3",
                **{**common, "params": {**_size(data), "storage": "s3"}},
            ),
            Row(
                f"list/scandir/{data.slug}",
                label="scandir + stat (folder)",
                fn="storage:list_scandir",
                needs=(("local", data),),
                kind="list-ceiling",
                storage="local",
                **common,
            ),
            Row(
                f"list/project-local/{data.slug}",
                label="project store list (folder)",
                fn="storage:list_project",
                needs=(("local", data),),
                kind="list",
                storage="local",
                **{**common, "params": {**_size(data), "storage": "local"}},
            ),
        ]
    return rows


def other_rows(plan: Plan) -> list[Row]:
    """Embedded queue, publisher windows, Dagster overhead, CLI, rate limit, CLI start,
    discovery."""
    reps = plan.reps
    count = 2_000 if plan.quick else 20_000
    ten = Dataset(10, 1024)
    rate, hold = (500.0, 5) if plan.quick else (1_000.0, 30)
    rate_data = plan.datasets["large"]
    rows = [
        Row(
            f"embedded/prefetch-{p}",
            "embedded",
            f"embedded queue, consumer prefetch {p}",
            "project:embedded",
            {"count": count, "size": 1024, "queue_file": "", "prefetch": p},
            reps=reps,
        )
        for p in (16, 200)
    ]
    rows += [
        Row(
            f"window/{w}",
            "windows",
            f"project publisher, window {w}",
            "project:publisher_window",
            {"count": count // 2, "size": 1024, "window": w},
            reps=reps,
            broker="rabbitmq",
        )
        for w in (16, 256, 1000)
    ]
    for kind in ("service", "job"):
        rows.append(
            Row(
                f"overhead/{kind}",
                "overhead",
                f"{kind}: 10 artefacts, folder → RabbitMQ",
                f"project:{kind}",
                {**_size(ten), "storage": "local", "broker": "rabbitmq"},
                needs=(("local", ten),),
                reps=max(reps, 5),
                kind=kind,
            )
        )
    rows += [
        Row(
            "cli/replay-10",
            "overhead",
            "CLI: execution replay of 10 artefacts (wall)",
            "extras:cli_replay",
            {"parent": ten.parent("local")},
            needs=(("local", ten),),
            reps=max(reps, 3),
        ),
        Row(
            "rate",
            "rate",
            f"rate {rate:,.0f}/s held {hold} s, folder → RabbitMQ",
            "project:service",
            {
                **_size(rate_data),
                "storage": "local",
                "broker": "rabbitmq",
                "rate": rate,
                "limit": int(rate * hold),
            },
            needs=(("local", rate_data),),
            reps=reps,
        ),
        Row(
            "cli-start",
            "cli-start",
            "CLI start times",
            "extras:cli_start",
            {"repeat": 5 if plan.quick else 15},
            reps=1,
        ),
    ]
    histories = (1_000,) if plan.quick else (1_000, 10_000, 100_000)
    rows += [
        Row(
            f"discovery/{h}",
            "discovery",
            f"{h:,} executions recorded before",
            "extras:discovery",
            {"history": h},
            reps=1,
        )
        for h in histories
    ]
    return rows


def shard_rows(plan: Plan) -> list[Row]:
    """Issue 14: one replay in 1, 2 and 4 shards on as many processes (``shards:sharded``),
    from the folder into one queue and into one queue per shard, and from S3 into one queue;
    the large data set, with the broker's CPU."""
    data = plan.datasets["large"]
    rows = []
    for storage, per_queue in (("local", False), ("local", True), ("s3", False)):
        for n in (1, 2, 4):
            if per_queue and n == 1:
                continue  # one shard in a queue of its own is the one-queue row
            target = "one queue per shard" if per_queue else "one queue"
            rows.append(
                Row(
                    f"shards/{storage}-{'queues' if per_queue else 'queue'}-{n}/{data.slug}",
                    "shards",
                    f"{n} shard{'s' if n > 1 else ''}: {_where(storage, 'rabbitmq')}, {target}",
                    "shards:sharded",
                    {**_size(data), "storage": storage, "shards": n, "per_queue": per_queue},
                    needs=((storage, data),),
                    reps=plan.reps,
                    role="large",
                    storage=storage,
                    broker="rabbitmq",
                )
            )
    return rows


def all_rows(plan: Plan) -> list[Row]:
    return [*throughput_rows(plan), *listing_rows(plan), *other_rows(plan), *shard_rows(plan)]
