"""Where the time goes: each project path once under pyinstrument, summarised by frame.

pyinstrument samples the thread that started it, here the one that plans and publishes; the
read-ahead threads appear as the time that thread waits for them (``Future.result``). The
summary gives, for the main thread's sampled time, the functions with the largest self time
and the project functions with the largest inclusive time (each counted once per stack).
The full trees are written to ``benchmarks/out/profile-*.txt`` (not committed).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from .lab import Lab
from .matrix import PATHS, Plan

TOP = 10


def _name(frame: Any) -> str:
    where = frame.file_path_short or ""
    if "site-packages/" in where:
        where = where.split("site-packages/", 1)[1]
    return f"{frame.function} ({where}:{frame.line_no})"


def summarise(session: Any) -> dict[str, Any]:
    """Top functions by self time and project functions by inclusive time, as shares."""
    root = session.root_frame()
    total = root.time if root is not None else 0.0
    own: dict[str, float] = defaultdict(float)
    inclusive: dict[str, float] = defaultdict(float)

    def walk(frame: Any, on_stack: frozenset[str]) -> None:
        if frame.is_synthetic:  # "[self]" leaves: already in their parent's total_self_time
            return
        name = _name(frame)
        own[name] += frame.total_self_time
        if "factflow_replay_dagster" in (frame.file_path or "") and name not in on_stack:
            inclusive[name] += frame.time
        for child in frame.children:
            walk(child, on_stack | {name})

    if root is not None:
        walk(root, frozenset())

    def top(table: dict[str, float]) -> list[list[Any]]:
        ranked = sorted(table.items(), key=lambda item: -item[1])[:TOP]
        return [[name, seconds / total if total else 0.0] for name, seconds in ranked]

    return {"seconds": total, "self": top(own), "project": top(inclusive)}


def profile_paths(lab: Lab, plan: Plan, out: Path) -> dict[str, Any]:
    """Profile the service on each path and ``replay_job`` on folder → RabbitMQ (small set)."""
    from pyinstrument.session import Session

    data = plan.datasets["small"]
    out.mkdir(parents=True, exist_ok=True)
    runs = [("service", storage, broker) for storage, broker in PATHS]
    runs.append(("job", "local", "rabbitmq"))
    summaries: dict[str, Any] = {}
    for kind, storage, broker in runs:
        lab.ensure(storage, data)
        name = f"{kind}-{storage}-{broker}"
        saved = out / f"profile-{name}.pyisession"
        params: dict[str, Any] = {
            "count": data.count,
            "size": data.size,
            "storage": storage,
            "broker": broker,
        }
        if broker == "embedded":
            params["queue_file"] = ""
        lab.measure(f"project:{kind}", params, reps=1, profile=str(saved))
        session = Session.load(str(saved))
        from pyinstrument.renderers import ConsoleRenderer

        text = ConsoleRenderer(unicode=True, color=False, short_mode=False).render(session)
        (out / f"profile-{name}.txt").write_text(text)
        summaries[name] = {"dataset": data.label, **summarise(session)}
        print(f"profiled {name}: {summaries[name]['seconds']:.1f} s sampled", flush=True)
    return summaries
