"""On a real (pseudo-)terminal the replay's progress bar stays whole: every log line is printed
above it, and no Dagster preview warning reaches the screen."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.worlds import World, news_world

from factflow_replay_dagster.cli._terminal import CLEAR, Terminal, format_bar

BAR = re.compile(r"replay \S+ \[[#-]+\] [\d,]+/[\d,]+ +\d+%  [\d,]+/s(  ETA [\d:-]+)?")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    yield from news_world({"FACTFLOW_HOME": str(tmp_path_factory.mktemp("tty-home"))})


def run_on_a_terminal(args: list[str], env: dict[str, str], *, timeout: float = 120) -> str:
    """Run the CLI with stdout and stderr on a pseudo-terminal; return everything it showed."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "factflow_replay_dagster.cli", *args],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env={**os.environ, **env, "TERM": "xterm", "COLUMNS": "110"},
        close_fds=True,
    )
    os.close(follower)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.5)
        if not ready:
            if process.poll() is not None:
                break
            continue
        try:
            data = os.read(leader, 65536)
        except OSError:  # the follower side closed: the process is gone
            break
        if not data:
            break
        chunks.append(data)
    process.wait(timeout=30)
    os.close(leader)
    assert process.returncode == 0, b"".join(chunks).decode(errors="replace")[-3000:]
    return b"".join(chunks).decode(errors="replace").replace("\r\n", "\n")


def test_log_lines_never_interleave_with_the_progress_bar(world: World) -> None:
    env = {**world.env, "FACTFLOW_PROGRESS_EVERY": "10"}
    env.pop("DAGSTER_HOME", None)
    world.emptied_queue("news.enrich")
    shown = run_on_a_terminal(
        [
            "-v",  # Dagster's INFO lines and our own, while the bar is drawn
            "execution",
            "replay",
            world.parent.id,
            "--from-stage",
            "parse",
            "--to-route",
            "enrich",
            "--rate",
            "400",
        ],
        env,
    )
    segments = shown.split(CLEAR)
    bars = [s for s in segments if BAR.search(s)]
    assert len(bars) >= 3, shown[-2000:]
    log_lines = 0
    for segment in segments[1:]:  # each starts where the line was cleared
        found = BAR.search(segment)
        if found is None:
            # Whole log lines only: nothing written after them on the same line.
            assert segment.endswith("\n"), repr(segment[-300:])
            log_lines += segment.count("\n")
            continue
        # A bar, alone on its line: at most its own line end after it (the final draw), then
        # only the command's report once the bar is done.
        assert found.start() == 0, repr(segment[:300])
        rest = segment[found.end() :]
        assert rest in ("", "\n") or (rest.startswith("\n") and segment is segments[-1]), repr(
            rest[:300]
        )
    assert log_lines >= 5, shown[-2000:]
    assert "240/240" in bars[-1]
    assert "SUCCEEDED, 240/240 confirmed" in shown
    assert "Warning" not in shown  # no Dagster preview/beta warning reaches the screen


def test_without_a_terminal_no_bar_is_drawn(tmp_path: Path) -> None:
    output = tmp_path / "err.txt"
    with output.open("w") as stream:
        terminal = Terminal(stream)
        terminal.progress("replay r", 5, 10, 2.0)
        terminal.stream.write("a line\n")
        terminal.close()
    assert output.read_text() == "a line\n"


def test_the_bar_fits_the_width_and_shows_rate_and_eta() -> None:
    text = format_bar("replay replay-1", 1_200, 5_000, 2_300.0, width=80)
    assert len(text) <= 79
    assert "1,200/5,000" in text
    assert "2,300/s" in text
    assert "ETA 0:00:01" in text


def test_a_note_replaces_rate_and_eta_and_is_drawn_at_once(tmp_path: Path) -> None:
    note = "broker blocked: low on memory, waiting"
    text = format_bar("replay replay-1", 1_200, 5_000, 2_300.0, width=100, note=note)
    assert text.endswith(f"1,200/5,000  24%  {note}")
    assert "ETA" not in text
    output = tmp_path / "err.txt"
    with output.open("w") as stream:
        terminal = Terminal(stream, bar=True)
        terminal.progress("replay r", 5, 10, 2.0)
        terminal.progress("replay r", 5, 10, 0.0, note=note)  # within 0.1 s: drawn all the same
        terminal.close()
    drawn = output.read_text().split(CLEAR)
    assert drawn[-1].rstrip("\n").endswith(note)
