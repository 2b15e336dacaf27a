"""Hostile input for property tests: ids, paths and YAML that try to escape or break things,
the hypothesis profile every such test uses, and a record of every file a test opened."""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

#: In CI (``CI=true``) examples are derandomized and no database is kept: a failure there
#: reproduces by running the same test again. Locally hypothesis explores new examples each
#: run and replays the failures it saved in ``.hypothesis/``.
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def profile(max_examples: int) -> settings:
    """The settings of a property test with ``max_examples`` examples (no deadline: the
    examples run real components, whose time is not what is tested)."""
    return settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=IN_CI,
        database=None if IN_CI else settings.default.database,
        print_blob=True,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
        ],
    )


#: Pieces of paths and ids that try to escape a folder, a key prefix or a header, or to look
#: like a valid id: traversal (also percent-encoded), separators, control characters, and
#: unicode lookalikes of '.', '/' and letters, invisible characters, lone surrogates.
DANGEROUS = [
    "..",
    ".",
    "/",
    "\\",
    "%2e%2e",
    "%2E%2E%2F",
    "%2f",
    "%252e%252e",
    "..%c0%af",
    "\x00",
    "\n",
    "\r\n",
    "\t",
    " ",
    "|",
    ":",
    "*",
    "?",
    "~",
    "$HOME",
    "\u2024",  # one dot leader, looks like '.'
    "\u2025",  # two dot leader, looks like '..'
    "\uff0e",  # fullwidth full stop
    "\u2215",  # division slash, looks like '/'
    "\u2044",  # fraction slash
    "\uff0f",  # fullwidth solidus
    "\u0430",  # cyrillic a
    "\u0455",  # cyrillic dze, looks like 's'
    "\u200b",  # zero width space
    "\u200d",  # zero width joiner
    "\u202e",  # right-to-left override
    "\ufeff",  # byte order mark
    "\u00a0",  # no-break space
    "e\u0301",  # e and a combining acute accent
    "\ufb01",  # the 'fi' ligature (NFKC: 'fi')
    "\u0130",  # capital I with a dot (its lower case is two characters)
    "\U0001f986",  # a duck, outside the BMP
    "\udc80",  # a lone surrogate (undecodable bytes in argv arrive as these)
    "\x7f",
    "\x85",
    "\u2028",
]
#: Valid-looking pieces, so examples also come close to (and reach) valid ids.
PLAIN = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,12}", fullmatch=True)


def hostile_text(*, max_pieces: int = 6) -> st.SearchStrategy[str]:
    """Strings built from :data:`DANGEROUS` and plain pieces, any text, and long strings
    around the length limits (128 and 255)."""
    pieces = st.one_of(st.sampled_from(DANGEROUS), PLAIN, st.text(max_size=4))
    return st.one_of(
        st.lists(pieces, min_size=1, max_size=max_pieces).map("".join),
        st.text(max_size=20),
        st.integers(min_value=120, max_value=300).map(lambda n: "a" * n),
        st.sampled_from(["a" * 128, "a" * 129, "a" * 255, "a" * 256, "a" * 63 + "b"]),
    )


def hostile_ids(*valid: str) -> st.SearchStrategy[str]:
    """``valid`` ids (a test's real ones) half the time, hostile text otherwise."""
    if not valid:
        return hostile_text()
    return st.one_of(st.sampled_from(valid), hostile_text())


@dataclass
class OpenedFiles:
    """Every path opened, scanned or listed (Python's audit events) while :meth:`recording`."""

    paths: list[str] = field(default_factory=list)
    _on: bool = False

    @contextlib.contextmanager
    def recording(self) -> Iterator[list[str]]:
        self.paths = []
        self._on = True
        try:
            yield self.paths
        finally:
            self._on = False

    def hook(self, event: str, args: tuple[object, ...]) -> None:
        if not self._on or event not in ("open", "os.scandir", "os.listdir"):
            return
        path = args[0] if args else None
        if isinstance(path, (str, bytes, os.PathLike)):
            raw = os.fsdecode(path)
            self.paths.append(raw)

    def outside(self, root: Path, allowed: Path) -> list[str]:
        """The paths recorded that lie under ``root`` (as given or once normalised) but not
        under ``allowed``: what a test opened where it should not have."""
        root_text, allowed_text = str(root), str(allowed)
        wrong = []
        for raw in self.paths:
            normal = os.path.normpath(raw)
            touches = raw.startswith(root_text) or normal.startswith(root_text)
            inside = normal == allowed_text or normal.startswith(allowed_text + os.sep)
            if touches and not inside:
                wrong.append(raw)
        return wrong


@functools.cache
def opened_files() -> OpenedFiles:
    """The process's one recorder (an audit hook cannot be removed, so it is installed once
    and records only inside :meth:`OpenedFiles.recording`)."""
    recorder = OpenedFiles()
    sys.addaudithook(recorder.hook)
    return recorder
