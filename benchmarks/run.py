"""Issue 11's side-by-side benchmark in one run: ceilings, naive baselines and this project.

Usage (through ``scripts/bench``, which installs the locked environment first)::

    scripts/bench                 # full run (about an hour): rewrites docs/performance.md
    scripts/bench --quick         # small sizes, 1 repetition: benchmarks/out/performance-quick.md
    scripts/bench --profile       # also profile each project path: "where the time goes"
    scripts/bench --only 'list/'  # only rows whose id matches (a regular expression)
    scripts/bench --save-baseline # also store this run as benchmarks/baseline.json ("before")

Servers (RabbitMQ, SeaweedFS) are started on loopback for the run; each repetition of each
row runs in a child process of its own. The figures of a full run go to
``benchmarks/last-run.json`` and the document compares them with ``benchmarks/baseline.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from bench import report
from bench.lab import Lab
from bench.machine import describe
from bench.matrix import Plan, Row, all_rows
from bench.profiles import profile_paths

HERE = Path(__file__).resolve().parent
DOC = HERE.parent / "docs" / "performance.md"
BASELINE = HERE / "baseline.json"
LAST = HERE / "last-run.json"
OUT = HERE / "out"


def aggregate(reps: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians of every numeric figure over the repetitions (and objects/s, MB/s per rep)."""
    for rep in reps:
        if rep.get("seconds") and "objects" in rep:
            rep["rate"] = rep["objects"] / rep["seconds"]
            rep["mbps"] = rep["bytes"] / rep["seconds"] / 1e6
    out: dict[str, Any] = {"reps": reps}
    for key, value in reps[0].items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            values = [r[key] for r in reps if isinstance(r.get(key), int | float)]
            out[key] = statistics.median(values) if values else None
        elif key not in out:
            out[key] = value
    return out


def measure(lab: Lab, row: Row) -> dict[str, Any]:
    for storage, data in row.needs:
        lab.ensure(storage, data)
    started = time.perf_counter()
    reps = lab.measure(row.fn, row.params, reps=row.reps)
    figures = aggregate(reps)
    rate = f"{figures['rate']:>9,.0f}/s" if figures.get("rate") else ""
    print(f"{row.id:<42} {rate} ({time.perf_counter() - started:.0f} s)", flush=True)
    return {
        "row": {
            k: getattr(row, k)
            for k in ("label", "section", "role", "kind", "storage", "broker", "params")
        },
        **figures,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, one repetition")
    parser.add_argument("--reps", type=int, default=None, help="repetitions per row")
    parser.add_argument("--profile", action="store_true", help="profile each project path")
    parser.add_argument("--only", default=None, help="regular expression on row ids")
    parser.add_argument("--save-baseline", action="store_true", help="store as the 'before'")
    parser.add_argument("--output", type=Path, default=None, help="the document to write")
    args = parser.parse_args()

    plan = Plan.make(quick=args.quick, reps=args.reps)
    rows = [r for r in all_rows(plan) if not args.only or re.search(args.only, r.id)]
    partial = args.quick or bool(args.only)
    started = time.time()
    results: dict[str, Any] = {"rows": {}, "profiles": {}}
    load_start = os.getloadavg()
    with Lab(
        s3=any(s == "s3" for r in rows for s, _ in r.needs)
        or args.profile
        or any(r.storage == "s3" for r in rows)
    ) as lab:
        results["meta"] = describe(lab)
        OUT.mkdir(exist_ok=True)
        for row in rows:
            results["rows"][row.id] = measure(lab, row)
            (OUT / "progress.json").write_text(json.dumps(results))  # if the run is cut short
        if args.profile:
            results["profiles"] = profile_paths(lab, plan, OUT)
        loads = lab.loads
    results["meta"].update(
        mode="quick" if args.quick else ("partial" if args.only else "full"),
        reps=plan.reps,
        seconds=time.time() - started,
        load_start=load_start[0],
        load_end=os.getloadavg()[0],
        load_during=[min(loads, default=0), statistics.median(loads or [0]), max(loads, default=0)],
    )
    OUT.mkdir(exist_ok=True)
    if partial:
        target, data_path = args.output or OUT / "performance-quick.md", OUT / "last-run.json"
    else:
        target, data_path = args.output or DOC, LAST
    data_path.write_text(json.dumps(results, indent=1, sort_keys=True))
    if args.save_baseline:
        BASELINE.write_text(json.dumps(results, indent=1, sort_keys=True))
    baseline = json.loads(BASELINE.read_text()) if BASELINE.exists() else None
    target.write_text(report.render(results, baseline, plan))
    print(
        f"wrote {target} and {data_path} in {(time.time() - started) / 60:.1f} min", file=sys.stderr
    )


if __name__ == "__main__":
    main()
