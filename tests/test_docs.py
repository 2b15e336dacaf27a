"""The tests the docs name exist: a guarantee in docs/reliability.md never points at a test
that was renamed or removed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: `path.py::name`, or `::name` for another test of the path named just before it.
REFERENCE = re.compile(r"`(?:((?:[\w./-]+/)?[\w-]+\.py))?(?:::(\w+))?`")


def named_tests(text: str) -> list[tuple[str, str | None]]:
    """Every (test file, test name or None) a document names, in order."""
    named: list[tuple[str, str | None]] = []
    path = None
    for match in REFERENCE.finditer(text):
        file, name = match.groups()
        if file is None and name is None:
            continue
        if file is not None:
            path = file
        if path is not None and (file is not None or name is not None):
            named.append((path, name))
    return named


def test_named_tests_parses_both_forms() -> None:
    text = "`a/test_x.py::test_one`, `::test_two`, `faults/test_y.py`, `docs.md`"
    assert named_tests(text) == [
        ("a/test_x.py", "test_one"),
        ("a/test_x.py", "test_two"),
        ("faults/test_y.py", None),
    ]


@pytest.mark.parametrize("document", ["docs/reliability.md"])
def test_every_test_a_document_names_exists(document: str) -> None:
    text = (ROOT / document).read_text()
    named = [(p, n) for p, n in named_tests(text) if Path(p).name.startswith("test_")]
    assert len(named) > 50
    missing = []
    for path, name in named:
        source = ROOT / "tests" / path
        if not source.is_file():
            missing.append(path)
        elif name is not None and not re.search(
            rf"^\s*(?:def|class) {name}\b", source.read_text(), re.MULTILINE
        ):
            missing.append(f"{path}::{name}")
    assert not missing, f"{document} names tests that do not exist: {missing}"
