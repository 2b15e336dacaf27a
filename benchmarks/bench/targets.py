"""Issue 11's targets as functions of one run's figures (a run or the baseline alike)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Results = dict[str, Any]


def find(results: Results | None, prefix: str, role: str, key: str = "rate") -> Any:
    """The figure ``key`` of the row whose id starts with ``prefix`` for data set ``role``."""
    for row_id, figures in ((results or {}).get("rows") or {}).items():
        if row_id.startswith(prefix) and figures["row"].get("role") == role:
            return figures.get(key)
    return None


def get(results: Results | None, row_id: str, key: str) -> Any:
    return ((results or {}).get("rows") or {}).get(row_id, {}).get(key)


def _div(a: Any, b: Any) -> float | None:
    return a / b if a is not None and b else None


def _sub(a: Any, b: Any) -> float | None:
    return a - b if a is not None and b is not None else None


@dataclass(frozen=True)
class Target:
    text: str
    goal: str
    value: Callable[[Results | None], float | None]
    met: Callable[[float], bool]
    unit: str = "×"

    def show(self, value: float | None) -> str:
        if value is None:
            return "—"
        if self.unit == "×":
            return f"{value:.2f}×"
        if self.unit == "%":
            return f"{value:.1%}"
        return f"{value:,.2f} {self.unit}" if value < 100 else f"{value:,.0f} {self.unit}"


def _s3_vs_min(role: str) -> Callable[[Results | None], float | None]:
    def value(r: Results | None) -> float | None:
        ceilings = [find(r, "ceiling/headers/", role), find(r, "storage/obstore/", role)]
        if None in ceilings:
            return None
        return _div(find(r, "service/s3-rabbitmq/", role), min(ceilings))

    return value


def _rate_error(r: Results | None) -> float | None:
    achieved, target = get(r, "rate", "achieved_rate"), get(r, "rate", "target_rate")
    return abs(achieved / target - 1) if achieved and target else None


def _rss(role: str) -> Callable[[Results | None], float | None]:
    return lambda r: find(r, "service/local-rabbitmq/", role, "rss_mb")


TARGETS = [
    *(
        Target(
            f"folder → RabbitMQ ≥ 0.7 × broker ceiling with headers ({role})",
            "≥ 0.70×",
            lambda r, role=role: _div(
                find(r, "service/local-rabbitmq/", role), find(r, "ceiling/headers/", role)
            ),
            lambda v: v >= 0.7,
        )
        for role in ("small", "large")
    ),
    *(
        Target(
            f"S3 → RabbitMQ ≥ 0.7 × min(headers ceiling, storage ceiling) ({role})",
            "≥ 0.70×",
            _s3_vs_min(role),
            lambda v: v >= 0.7,
        )
        for role in ("small", "large")
    ),
    Target(
        "S3 → RabbitMQ ≥ 5 × naive (small)",
        "≥ 5.00×",
        lambda r: _div(find(r, "service/s3-rabbitmq/", "small"), find(r, "naive/s3/", "small")),
        lambda v: v >= 5,
    ),
    *(
        Target(
            f"S3 listing ≥ 0.8 × obstore's ({role})",
            "≥ 0.80×",
            lambda r, role=role: _div(
                find(r, "list/project-s3/", role), find(r, "list/obstore/", role)
            ),
            lambda v: v >= 0.8,
        )
        for role in ("small", "large")
    ),
    Target(
        "plan + first confirm, folder → RabbitMQ (large)",
        "< 3 s",
        lambda r: find(r, "service/local-rabbitmq/", "large", "first_confirm"),
        lambda v: v < 3,
        unit="s",
    ),
    Target(
        "peak RSS large ÷ small, folder → RabbitMQ",
        "≤ 1.20×",
        lambda r: _div(_rss("large")(r), _rss("small")(r)),
        lambda v: v <= 1.2,
    ),
    Target(
        "peak RSS large, folder → RabbitMQ", "< 300 MB", _rss("large"), lambda v: v < 300, unit="MB"
    ),
    Target(
        "peak RSS large ÷ small, S3 → RabbitMQ",
        "≤ 1.20×",
        lambda r: _div(
            find(r, "service/s3-rabbitmq/", "large", "rss_mb"),
            find(r, "service/s3-rabbitmq/", "small", "rss_mb"),
        ),
        lambda v: v <= 1.2,
    ),
    Target(
        "embedded queue publish (durable, 1 KiB)",
        "≥ 10,000/s",
        lambda r: get(r, "embedded/prefetch-16", "rate"),
        lambda v: v >= 10_000,
        unit="/s",
    ),
    Target(
        "embedded queue consume + ack (prefetch 16)",
        "≥ 5,000/s",
        lambda r: get(r, "embedded/prefetch-16", "consume_rate"),
        lambda v: v >= 5_000,
        unit="/s",
    ),
    Target(
        "Dagster overhead: replay_job − service, 10 artefacts",
        "< 1 s",
        lambda r: _sub(get(r, "overhead/job", "seconds"), get(r, "overhead/service", "seconds")),
        lambda v: v < 1,
        unit="s",
    ),
    Target(
        "CLI replays 10 artefacts end to end",
        "< 2.5 s",
        lambda r: get(r, "cli/replay-10", "seconds"),
        lambda v: v < 2.5,
        unit="s",
    ),
    Target(
        "rate limit: achieved vs target", "within 5%", _rate_error, lambda v: v <= 0.05, unit="%"
    ),
]


def method() -> list[str]:
    return [
        "## How each row is measured",
        "",
        "* **Broker ceiling**: pika `SelectConnection`, 1,000 confirms in flight, to a durable "
        "queue through the default exchange; messages carry exactly the project's properties "
        "(persistent, `mandatory`, `content_type`, `type`, `message_id`, the `factflow-*` "
        "headers of `ArtefactHeaders.to_headers`). *Prebuilt*: every body and "
        "`BasicProperties` built before timing. *Headers*: the id (`artefact_message_id`), a "
        "copy of the header dict and the properties made per message while timing.",
        "* **Storage ceiling**: obstore `get` of every object on 8 threads (keys listed before "
        "timing); for the folder, a plain loop opening and reading each file.",
        "* **Naive**: list, then for each object a sequential read (boto3 `get_object`, or a "
        "file read and an MD5 for the etag) and a `BlockingConnection.basic_publish` waiting "
        "for its confirm. Not run for the large set (it would take half an hour).",
        "* **This project**: `DetachedReplayService.run` (plan included) and `replay_job` "
        '(`build_definitions(settings).resolve_job_def("replay_job").execute_in_process` on a '
        "temporary Dagster instance), components from `connect` with "
        "`FACTFLOW_CONFIRM_WINDOW=1000` and the default `progress_every`; the parent is a "
        "registered execution (`create_execution` + `record_stored_stage`). The time to the "
        "first confirm comes from a wrapper around the publisher.",
        "* **Peak RSS**: `VmHWM` of the child process that ran the row (imports included); "
        "**CPU**: `getrusage` of that process and `/proc/<beam.smp>/stat` of the broker, both "
        "over the timed part.",
        "* Objects are written once per storage and reused by every repetition; the queue is "
        "purged after each repetition (outside the timing).",
        "",
    ]
