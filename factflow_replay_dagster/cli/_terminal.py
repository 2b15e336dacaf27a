"""The command line's stderr: a progress bar that log lines never break, and the lines themselves.

While a job runs, ``sys.stderr`` is a :class:`Terminal`'s :attr:`~Terminal.stream`: every
complete line written to it (Dagster's console logger, Python logging, warnings) is printed
above the bar, which is then drawn again below it. Nothing is parsed; lines are only kept
whole. Without a terminal (a pipe, a file, ``--json``) no bar is drawn and lines pass through.
"""

from __future__ import annotations

__all__ = ["Terminal", "format_bar"]

import io
import shutil
import threading
import time
from typing import TextIO

#: Erase the current line and return to its start.
CLEAR = "\r\x1b[2K"
#: Redraw the bar at most this often (seconds); the last update is always drawn.
_REDRAW = 0.1


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def format_bar(
    label: str,
    done: int,
    total: int,
    rate: float,
    *,
    width: int = 80,
    final: bool = False,
    note: str | None = None,
) -> str:
    """``label [#####-----] 1,200/5,000  24%  2,300/s  ETA 0:00:02`` fitted to ``width``;
    a ``note`` (``broker blocked: low on memory``) replaces the rate and ETA."""
    share = done / total if total else 1.0
    if note is not None and not final:
        tail = f" {done:,}/{total:,} {share:4.0%}  {note}"
    elif final:
        tail = f" {done:,}/{total:,} {share:4.0%}  {rate:,.0f}/s"
    else:
        eta = _duration((total - done) / rate) if rate > 0 and done < total else "-:--:--"
        tail = f" {done:,}/{total:,} {share:4.0%}  {rate:,.0f}/s  ETA {eta}"
    room = max(width - 1 - len(label) - len(tail) - 3, 10)
    filled = round(room * min(share, 1.0))
    return f"{label} [{'#' * filled}{'-' * (room - filled)}]{tail}"[: max(width - 1, 20)]


class Terminal:
    """Owns one output stream (normally the real stderr) for the length of a command."""

    def __init__(self, output: TextIO, *, bar: bool | None = None) -> None:
        self._output = output
        self.bar = output.isatty() if bar is None else bar
        self._lock = threading.Lock()
        self._shown: str | None = None  # the bar as last drawn
        self._pending: str | None = None  # a newer bar not drawn yet
        self._drawn_at = 0.0
        self._note: str | None = None  # the note of the bar last given
        self.stream = _LineStream(self)

    # -- the bar -----------------------------------------------------------------------------

    def progress(
        self, label: str, done: int, total: int, rate: float, *, note: str | None = None
    ) -> None:
        """Show (or update) the bar; drawn at most every 0.1 s, at once when ``note`` (a
        state such as ``broker blocked: ...``, shown instead of rate and ETA) changes."""
        if not self.bar:
            return
        with self._lock:
            self._pending = format_bar(label, done, total, rate, width=self._width(), note=note)
            changed = note != self._note
            self._note = note
            if changed or time.monotonic() - self._drawn_at >= _REDRAW or done >= total:
                self._draw()

    def finish(self, label: str, done: int, total: int, rate: float) -> None:
        """Draw the bar one last time and end its line; later output starts below it."""
        if not self.bar:
            return
        with self._lock:
            text = format_bar(label, done, total, rate, width=self._width(), final=True)
            self._output.write(f"{CLEAR}{text}\n")
            self._output.flush()
            self._shown = self._pending = None

    def close(self) -> None:
        """Leave the bar where it is (with its line ended) and stop drawing."""
        self.stream.flush()
        with self._lock:
            if self._shown is not None:
                self._output.write("\n")
                self._output.flush()
            self._shown = self._pending = None

    def _width(self) -> int:
        return shutil.get_terminal_size((100, 24)).columns

    def _draw(self) -> None:
        if self._pending is not None:
            self._output.write(f"{CLEAR}{self._pending}")
            self._output.flush()
            self._shown, self._pending = self._pending, None
            self._drawn_at = time.monotonic()

    # -- lines -------------------------------------------------------------------------------

    def line(self, text: str) -> None:
        """Print one whole line above the bar (the bar is drawn again below it)."""
        with self._lock:
            if self._shown is not None:
                self._output.write(CLEAR)
            self._output.write(text + "\n")
            if self._shown is not None:
                self._pending = self._pending or self._shown
                self._draw()
            self._output.flush()


class _LineStream(io.TextIOBase):
    """A text stream that hands the terminal whole lines only (a partial line waits)."""

    def __init__(self, terminal: Terminal) -> None:
        self._terminal = terminal
        self._partial = ""

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False  # colours and cursor tricks are the terminal's business, not the writer's

    def write(self, text: str) -> int:
        *lines, self._partial = (self._partial + text).split("\n")
        for line in lines:
            self._terminal.line(line)
        return len(text)

    def flush(self) -> None:
        if self._partial:
            partial, self._partial = self._partial, ""
            self._terminal.line(partial)
