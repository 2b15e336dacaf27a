"""The report's smaller sections: embedded queue, confirm windows, Dagster and CLI, rate limit,
CLI start, discovery, shards (issue 14) and the profiles ("where the time goes")."""

from __future__ import annotations

from typing import Any

from .tables import Results, by_section, figure, num, ratio, section_rows, simple


def others(results: Results, baseline: Results | None) -> list[str]:
    def b(figures: Any, key: str, digits: int = 0) -> str:
        return num(figures.get(key) if figures else None, digits)

    prebuilt = figure(
        results,
        "ceiling/prebuilt/"
        + next(
            (k.rsplit("/", 1)[1] for k in results["rows"] if k.startswith("ceiling/prebuilt/")), ""
        ),
    )
    lines = simple(
        "Embedded queue",
        "Durable 1 KiB messages into a fresh SQLite queue through "
        "`connect.open_publisher`, then consumed and acknowledged one by one through "
        "`connect.open_consumer`.",
        ["row", "publish/s", "consume+ack/s", "before publish/s", "before consume+ack/s"],
        by_section(
            results,
            baseline,
            "embedded",
            lambda f, old: [
                num(f.get("rate")),
                num(f.get("consume_rate")),
                b(old, "rate"),
                b(old, "consume_rate"),
            ],
        ),
    )
    lines += simple(
        "Publisher confirm windows",
        "The project's publisher alone (prebuilt "
        "messages with the project's headers), by `FACTFLOW_CONFIRM_WINDOW`.",
        [
            "row",
            "msgs/s",
            "× ceiling (prebuilt, small set)",
            "first confirm s",
            "CPU client s",
            "CPU broker s",
            "before msgs/s",
        ],
        by_section(
            results,
            baseline,
            "windows",
            lambda f, old: [
                num(f.get("rate")),
                ratio(f.get("rate"), prebuilt),
                num(f.get("first_confirm"), 3),
                num(f.get("cpu_client"), 1),
                num(f.get("cpu_broker"), 1),
                b(old, "rate"),
            ],
        ),
    )
    lines += simple(
        "Dagster and the command line",
        "Wall seconds, imports excluded for the "
        "in-process rows (the job's time includes `build_definitions`); the CLI row "
        "is a whole `python -m factflow_replay_dagster.cli execution replay` process "
        "on an existing Dagster instance.",
        ["row", "seconds", "peak RSS MB", "before seconds"],
        by_section(
            results,
            baseline,
            "overhead",
            lambda f, old: [num(f.get("seconds"), 2), num(f.get("rss_mb")), b(old, "seconds", 2)],
        ),
    )
    lines += simple(
        "Rate limit",
        "A `rate`-limited replay (folder → RabbitMQ): the rate "
        "between the first and the last confirm, and the worst 5-second window.",
        ["row", "achieved/s", "error", "worst 5 s window", "held s", "before error"],
        by_section(
            results,
            baseline,
            "rate",
            lambda f, old: [
                num(f.get("achieved_rate"), 1),
                _pct(f, "achieved_rate"),
                f"{f.get('worst_5s_error', 0):.1%}",
                num(f.get("held_seconds"), 1),
                _pct(old, "achieved_rate") if old else "—",
            ],
        ),
    )
    return lines


def _pct(figures: dict[str, Any], key: str) -> str:
    return f"{abs(figures[key] / figures['target_rate'] - 1):.1%}"


def cli_start(results: Results, baseline: Results | None) -> list[str]:
    now = results["rows"].get("cli-start")
    if now is None:
        return []
    old = (figure(baseline, "cli-start", "commands") or {}) if baseline else {}
    body = []
    for label, (median, low, high) in now["commands"].items():
        goal = "—" if label.startswith("python") else ("met" if median < 0.4 else "**missed**")
        before = num(old[label][0], 3) if label in old else "—"
        body.append(f"| `{label}` | {median:.3f} | {low:.3f} | {high:.3f} | {goal} | {before} |")
    return simple(
        "Command-line start",
        "Whole processes after one warm-up, embedded defaults "
        "with one registered execution; budget 0.4 s per factflow-replay command.",
        ["command", "median s", "min s", "max s", "< 0.4 s", "before median s"],
        body,
    )


def discovery(results: Results, baseline: Results | None) -> list[str]:
    return simple(
        "Discovery sensor",
        "One `stored_artefacts_sensor` tick (`discover`) for 100 "
        "new executions with four finished stages, median of 3 calls; its cost should "
        "not grow with the history.",
        [
            "executions recorded before",
            "partitions",
            "asset events",
            "tick ms",
            "with checks ms",
            "before tick ms",
        ],
        by_section(
            results,
            baseline,
            "discovery",
            lambda f, old: [
                str(f["partitions"]),
                str(f["events"]),
                num(f["tick"] * 1000),
                num(f["tick_verified"] * 1000),
                num(old["tick"] * 1000) if old else "—",
            ],
        ),
    )


def shards(results: Results, baseline: Results | None) -> list[str]:
    rows = section_rows(results, "shards")
    if not rows:
        return []
    slug = next(iter(rows)).rsplit("/", 1)[1]
    headers = figure(results, f"ceiling/headers/{slug}")

    def one_shard(row_id: str) -> Any:
        storage = row_id.split("/")[1].split("-", maxsplit=1)[0]
        return figure(results, f"shards/{storage}-queue-1/{slug}")

    def cells(row_id: str, f: dict[str, Any]) -> list[str]:
        per_thousand = 1000 * f["cpu_broker"] / f["objects"] if f.get("cpu_broker") else None
        return [
            num(f.get("rate")),
            num(f.get("publish_rate")),
            ratio(f.get("rate"), one_shard(row_id)),
            ratio(f.get("publish_rate"), headers),
            num(f.get("cpu_client"), 1),
            num(f.get("cpu_broker"), 1),
            num(per_thousand, 2),
        ]

    return simple(
        "Shards (issue 14)",
        "One replay of the large data set cut into 1, 2 or 4 shards, each published by a "
        "process of its own (`publish_shard`, as `replay_job` runs them on the multiprocess "
        "executor), into the route's queue or into one queue per shard. Objects/s from the "
        "plan to the end marker; publishing objects/s from the first shard's first message "
        "to the last shard's end; × 1 shard compares with the one-queue row of one shard of "
        "the same storage; × ceiling compares publishing with one pika publisher's ceiling "
        "(id + headers, same data set). CPU is the shards' processes together and the "
        "broker's. On 2 cores every shard, the broker (and SeaweedFS) share the same two: "
        "the rows show where adding publishers stops adding throughput here, not what more "
        "machines give.",
        [
            "row",
            "objects/s",
            "publishing objects/s",
            "× 1 shard",
            "× ceiling (headers)",
            "CPU shards s",
            "CPU broker s",
            "broker CPU s per 1,000",
        ],
        [
            "| " + " | ".join([f["row"]["label"], *cells(row_id, f)]) + " |"
            for row_id, f in rows.items()
        ],
    )


def profiles(results: Results, baseline: Results | None) -> list[str]:
    now, old = results.get("profiles") or {}, (baseline or {}).get("profiles") or {}
    lines = [
        "## Where the time goes",
        "",
        "pyinstrument on the thread that plans and publishes (`scripts/bench --profile`), "
        "once per path; shares of its sampled time. Self: the function's own time; "
        "project: inclusive time of `factflow_replay_dagster` functions.",
        "",
    ]
    for name in sorted(set(now) | set(old)):
        for kind in ("self", "project"):
            lines += [
                f"### {name}: top by {kind} time",
                "",
                "| # | before | share | now | share |",
                "|---:|---|---:|---|---:|",
            ]
            before, after = old.get(name, {}).get(kind, []), now.get(name, {}).get(kind, [])
            for i in range(max(len(before), len(after))):
                cells = [
                    f"`{x[0]}` | {x[1]:.0%}" if x else "— | —"
                    for x in (
                        before[i] if i < len(before) else None,
                        after[i] if i < len(after) else None,
                    )
                ]
                lines.append(f"| {i + 1} | {cells[0]} | {cells[1]} |")
            lines.append("")
    return lines
