"""The README's Quickstart: exactly two commands; CI runs the second; the first (the demo)
works on a fresh clone as a new user would run it."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def quickstart_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block, "the Quickstart has no sh block"
    return [
        line.split("#", 1)[0].strip()
        for line in block.group(1).splitlines()
        if line.strip() and not line.startswith("#")
    ]


def test_the_quickstart_holds_exactly_the_two_commands_and_ci_runs_the_second() -> None:
    assert quickstart_commands() == ["./scripts/demo", "./scripts/test"]
    ci = (ROOT / ".ci" / "run").read_text()
    assert "exec ./scripts/test" in ci
    assert "CI=true" in ci


def test_the_demo_command_on_a_fresh_clone(tmp_path: Path) -> None:
    clone = tmp_path / "fresh"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("FACTFLOW_", "AWS_", "DAGSTER_", "VIRTUAL_ENV"))
    }
    demo = quickstart_commands()[0]
    result = subprocess.run(
        [demo], cwd=clone, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "Report" in out
    assert "sources fetched: 240 by the run, 0 since" in out
    assert out.count("SUCCEEDED") >= 6  # two executions, six stages
    assert "factflow-replay ui" in out
    assert (clone / ".factflow" / "executions.db").is_file()
