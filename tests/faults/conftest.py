"""Fault tests print their figures (faults survived, messages lost, duplicates) in the summary."""

from typing import Any

from support.faults import print_figures


def pytest_terminal_summary(terminalreporter: Any) -> None:
    print_figures(terminalreporter)
