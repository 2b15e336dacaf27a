"""Whole-command rows: the CLI replaying 10 artefacts, the CLI's start times, and one
discovery-sensor tick against the size of the recorded history."""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .common import FROM_STAGE, TO_ROUTE, Context, Meter, settings

CLI = [sys.executable, "-m", "factflow_replay_dagster.cli"]


def _cli_env(ctx: Context, home: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FACTFLOW_", "AWS_"))}
    env.update(
        FACTFLOW_HOME=home,
        FACTFLOW_STORAGE_URL=ctx["local_url"],
        FACTFLOW_BROKER_URL=ctx["rabbitmq_url"],
        FACTFLOW_DATABASE_URL=ctx["database_url"],
    )
    return env


def cli_replay(ctx: Context, *, parent: str) -> dict[str, Any]:
    """``factflow-replay execution replay`` as a subprocess, wall clock, on a Dagster instance
    that already exists (one untimed replay made it, as a user's first run does)."""
    home = str(Path(ctx["home"]) / "cli")
    env = _cli_env(ctx, home)
    argv = [
        *CLI,
        "execution",
        "replay",
        parent,
        "--from-stage",
        FROM_STAGE,
        "--to-route",
        TO_ROUTE,
        "--json",
    ]
    if not Path(home).exists():
        subprocess.run(argv, env=env, check=True, capture_output=True)
    with Meter(ctx) as meter:
        subprocess.run(argv, env=env, check=True, capture_output=True)
    # The CLI's own peak (the largest finished child of this process; this one is small).
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return meter.result(10, 1024, rss_mb=rss)


def cli_start(ctx: Context, *, repeat: int) -> dict[str, Any]:
    """``--help``, ``execution list`` and ``execution show`` after one warm-up each (whole
    processes, embedded defaults, one registered execution), and the interpreter alone."""
    from factflow_replay_dagster.pipelines import sample_config

    with tempfile.TemporaryDirectory(prefix="bench-cli-") as home:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("FACTFLOW_", "AWS_"))}
        env["FACTFLOW_HOME"] = home
        config = Path(home) / "news.yaml"
        config.write_text(sample_config("news").read_text())
        subprocess.run(
            [*CLI, "execution", "register", "--snapshot", str(config), "--id", "bench-1"],
            env=env,
            check=True,
            capture_output=True,
        )
        commands = {
            "factflow-replay --help": [*CLI, "--help"],
            "factflow-replay execution list": [*CLI, "execution", "list"],
            "factflow-replay execution show bench-1": [*CLI, "execution", "show", "bench-1"],
            "python -c pass (the interpreter alone)": [sys.executable, "-c", "pass"],
        }
        figures: dict[str, Any] = {"commands": {}}
        for label, argv in commands.items():
            subprocess.run(argv, env=env, check=True, capture_output=True)
            times = []
            for _ in range(repeat):
                started = time.perf_counter()
                subprocess.run(argv, env=env, check=True, capture_output=True)
                times.append(time.perf_counter() - started)
            figures["commands"][label] = [statistics.median(times), min(times), max(times)]
    return figures


def discovery(ctx: Context, *, history: int) -> dict[str, Any]:
    """One ``stored_artefacts_sensor`` tick (``discover``) for 100 new executions after
    ``history`` recorded ones, without and with the storage check; median of 3 calls."""
    from factflow_replay_dagster.connect import open_artefact_store, open_execution_store
    from factflow_replay_dagster.defs.assets import stage_asset_key
    from factflow_replay_dagster.defs.discovery import discover
    from factflow_replay_dagster.pipelines import sample_config
    from factflow_replay_dagster.snapshot import ConfigSnapshot
    from factflow_replay_dagster.testing.history import bulk_history, finished_executions

    stages = [("ingest", "fetch"), ("ingest", "parse"), ("enrich", "annotate"), ("enrich", "index")]
    registered = {stage_asset_key("news", r, s) for r, s in stages}
    with tempfile.TemporaryDirectory(prefix="bench-discovery-") as tmp:
        cfg = settings(
            {
                **ctx,
                "database_url": f"sqlite:///{tmp}/h.db",
                "local_url": Path(tmp, "objects").as_uri(),
            },
            storage="local",
            broker="rabbitmq",
        )
        with open_execution_store(cfg) as store, open_artefact_store(cfg) as objects:
            snapshot = ConfigSnapshot.load(sample_config("news"))
            bulk_history(store, snapshot, history)
            cursor = str(store.last_event_seq())
            finished_executions(store, snapshot, 100)
            ticks: dict[str, float] = {}
            for name, verify in (("tick", None), ("tick_verified", objects)):
                times = []
                for _ in range(3):
                    started = time.perf_counter()
                    found = discover(
                        store,
                        cursor,
                        registered=registered,
                        location="folder x",
                        verify_with=verify,
                    )
                    times.append(time.perf_counter() - started)
                ticks[name] = statistics.median(times)
    return {
        **ticks,
        "partitions": sum(len(k) for k in found.partitions.values()),
        "events": len(found.events),
    }
