"""Fault tests keep their figures (faults survived, inputs tried, messages lost, duplicates)
for the run's summary, which tests/conftest.py prints."""

from collections.abc import Generator

import pytest
from support.faults import figures_of


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    """A test's ``figure()`` lines are kept for it (a hook: hypothesis refuses fixtures)."""
    with figures_of(item):
        return (yield)
