"""The machine, the versions and the date a run measured, for the document's header."""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

from support.servers.seaweedfs import find_weed

from .lab import Lab

PACKAGES = ("pika", "boto3", "obstore", "SQLAlchemy", "dagster", "pydantic", "pyinstrument")


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float:
    try:
        first = Path("/proc/meminfo").read_text().splitlines()[0]
        return int(first.split()[1]) / (1 << 20)
    except (OSError, IndexError, ValueError):
        return 0.0


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def describe(lab: Lab) -> dict[str, Any]:
    """Date, machine and versions (the servers' too: the run's own RabbitMQ and SeaweedFS)."""
    weed = subprocess.run([find_weed(), "version"], capture_output=True, text=True, check=False)
    versions = {"Python": platform.python_version(), "SQLite": sqlite3.sqlite_version}
    versions.update({p: _version(p) for p in PACKAGES})
    versions["RabbitMQ"] = lab.rabbitmq.ctl("version").strip()
    words = weed.stdout.split()  # "version 8000GB 4.48 pypi linux amd64"
    versions["SeaweedFS"] = words[2] if len(words) > 2 else "unknown"
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{_cpu()} ×{os.cpu_count()}, {_memory_gib():.0f} GiB, "
        f"{platform.system()} {platform.release()}",
        "versions": versions,
    }
