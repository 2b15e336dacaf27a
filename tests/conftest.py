"""Shared fixtures: the real servers (support.servers) for the whole session; and the fault
tests' figures, printed at the end of the run (here, not in tests/faults/conftest.py: under
xdist only this file is loaded by the process that prints the summary)."""

from typing import Any

from support.faults import print_figures

pytest_plugins = ["support.servers.fixtures"]


def pytest_terminal_summary(terminalreporter: Any) -> None:
    print_figures(terminalreporter)
