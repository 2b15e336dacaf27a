"""Fault tests print their figures (faults survived, inputs tried, messages lost, duplicates)
in the summary."""

from collections.abc import Generator
from typing import Any

import pytest
from support.faults import figures_of, print_figures


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    """A test's ``figure()`` lines are kept for it (a hook: hypothesis refuses fixtures)."""
    with figures_of(item):
        return (yield)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    print_figures(terminalreporter)
