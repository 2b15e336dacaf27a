"""Figures that fault tests print: shown in the run's summary, whichever worker ran the test.

A test calls :func:`report_figures` with a title and rows (messages lost, duplicates, the
bound they stay within...). They are printed at once (seen with ``-s``) and kept in the
test's report, so the terminal summary lists them under "figures" after every run, with
xdist too (a worker's output is otherwise not shown for tests that pass).
``tests/conftest.py`` enables the summary with ``pytest_plugins``.
"""

from __future__ import annotations

__all__ = ["report_figures"]

from collections.abc import Mapping

import pytest

_KEY = "figures"


def _format(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
    return str(value)


def report_figures(request: pytest.FixtureRequest, title: str, rows: Mapping[str, object]) -> str:
    """Print ``title`` and ``rows`` (name: value) and keep them for the run's summary."""
    width = max((len(name) for name in rows), default=0)
    lines = [title, *(f"  {name.ljust(width)}  {_format(value)}" for name, value in rows.items())]
    text = "\n".join(lines)
    print(f"\n{text}")
    request.node.user_properties.append((_KEY, text))
    return text


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """List every test's figures, passed or failed, after the run."""
    shown: list[str] = []
    for outcome in ("passed", "failed"):
        for report in terminalreporter.stats.get(outcome, []):
            if getattr(report, "when", None) != "call":
                continue
            for key, text in getattr(report, "user_properties", []):
                if key == _KEY:
                    shown.append(f"{report.nodeid} ({outcome})\n{text}")
    if shown:
        terminalreporter.section("figures")
        for block in shown:
            terminalreporter.write_line(block)
            terminalreporter.write_line("")
