"""How fast the command line starts: ``--help``, ``execution list`` and ``execution show``.

Usage: ``python benchmarks/bench_cli_start.py [--repeat 15]``. Each command runs ``--repeat``
times after one warm-up (hyperfine-style: whole processes, wall clock, median and spread),
on embedded defaults in a temporary ``FACTFLOW_HOME`` holding one execution; ``python -X
importtime`` then names the slowest imports of ``execution list``. The table goes to
``benchmarks/results/cli_start.md``. Dagster is never imported by these commands.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "cli_start.md"
TARGET = 0.4  # seconds, the budget for these commands on the 2-core machines here


def timed(argv: list[str], env: dict[str, str], repeat: int) -> list[float]:
    subprocess.run(argv, env=env, check=True, capture_output=True)  # warm-up (bytecode, cache)
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run(argv, env=env, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return times


def slowest_imports(argv: list[str], env: dict[str, str], top: int = 6) -> list[tuple[str, int]]:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", *argv[1:]],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    rows = []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = (part.strip() for part in line.split("|", 2))
        if cumulative.isdigit() and name and not name.startswith(" "):
            rows.append((name, int(cumulative)))
    top_level = [(n, us) for n, us in rows if "." not in n or n.startswith("factflow")]
    return sorted(top_level, key=lambda r: -r[1])[:top]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    cli = [sys.executable, "-m", "factflow_replay_dagster.cli"]
    with tempfile.TemporaryDirectory(prefix="bench-cli-") as home:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("FACTFLOW_", "AWS_"))},
            "FACTFLOW_HOME": home,
        }
        config = Path(home) / "news.yaml"
        from factflow_replay_dagster.pipelines import sample_config

        config.write_text(sample_config("news").read_text())
        registered = subprocess.run(
            [*cli, "execution", "register", "--snapshot", str(config), "--id", "bench-1"],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        assert "registered execution bench-1" in registered.stdout, registered.stdout
        commands = {
            "factflow-replay --help": [*cli, "--help"],
            "factflow-replay execution list": [*cli, "execution", "list"],
            "factflow-replay execution show bench-1": [*cli, "execution", "show", "bench-1"],
            "python -c pass (the interpreter alone)": [sys.executable, "-c", "pass"],
        }
        rows = []
        for label, argv in commands.items():
            times = timed(argv, env, args.repeat)
            median = statistics.median(times)
            rows.append((label, median, min(times), max(times)))
            print(f"{label:<42} median {median * 1000:6.0f} ms  ({len(times)} runs)")
        imports = slowest_imports(commands["factflow-replay execution list"], env)
    lines = [
        "# Command-line start time",
        "",
        f"Whole processes, wall clock, {args.repeat} runs after a warm-up, embedded defaults "
        f"with one registered execution. Target: under {TARGET} s for each factflow-replay "
        "command (Dagster is imported only by commands that run or describe jobs).",
        "",
        f"Machine: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {platform.platform()}; "
        f"{os.cpu_count()} CPUs; Python {platform.python_version()}; load average "
        f"{os.getloadavg()[0]:.2f} at the end.",
        "",
        "| command | median s | min s | max s | target |",
        "|---|---:|---:|---:|---|",
    ]
    for label, median, low, high in rows:
        target = "-" if label.startswith("python") else ("met" if median < TARGET else "MISSED")
        lines.append(f"| `{label}` | {median:.3f} | {low:.3f} | {high:.3f} | {target} |")
    lines += [
        "",
        "Slowest imports of `execution list` (`python -X importtime`, cumulative):",
        "",
        "| module | ms |",
        "|---|---:|",
        *(f"| `{name}` | {micro / 1000:.0f} |" for name, micro in imports),
        "",
        "Regenerate with `scripts/bench` (or `.venv/bin/python benchmarks/bench_cli_start.py`).",
        "",
    ]
    RESULTS.write_text("\n".join(lines))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
