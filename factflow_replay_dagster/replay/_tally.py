"""What a replay's plan learns from one listing: counts, bytes, bounds, and what is missing.

The plan streams the selected objects once. With the stage's manifest (the keys its lineage
recorded storing), the same pass walks the manifest's selection alongside, in the same key
order, so a lost object is found for any selection (``match``, ``limit``) in constant
memory; without one, only an unfiltered replay can be counted against lineage.
"""

from __future__ import annotations

__all__ = ["Tally"]

from collections.abc import Iterable, Iterator

from ..storage.base import MAX_KEY_BYTES, ObjectInfo, check_key

_DONE = object()


class Tally:
    """Feed it the selected objects in key order (:meth:`add`), then read the results."""

    def __init__(self, expected: Iterable[str] | None = None) -> None:
        self.count = 0
        self.bytes = 0
        self.first: str | None = None
        self.last: str | None = None
        self.largest: ObjectInfo | None = None
        #: Keys the manifest selects that storage does not hold (counted; the first kept).
        self.missing = 0
        self.first_missing: str | None = None
        #: How many keys the manifest selects (None: no manifest).
        self.expected: int | None = None if expected is None else 0
        self._expected: Iterator[str] | None = None if expected is None else iter(expected)
        self._next: object = _DONE
        self._advance()

    def _advance(self) -> None:
        if self._expected is None:
            return
        self._next = next(self._expected, _DONE)
        if self._next is not _DONE and self.expected is not None:
            self.expected += 1

    def _lost(self, key: str) -> None:
        self.missing += 1
        self.first_missing = self.first_missing or key

    def add(self, info: ObjectInfo) -> None:
        """One more selected object (keys must come in increasing order). A key no store can
        read back (longer than 1,024 bytes: files put in a folder store by other tools) is
        refused here, in the plan, rather than when publishing reaches it."""
        if len(info.key) > MAX_KEY_BYTES // 4:  # fewer characters cannot be too many bytes
            check_key(info.key)
        self.count += 1
        self.bytes += info.size
        self.first = self.first or info.key
        self.last = info.key
        if self.largest is None or info.size > self.largest.size:
            self.largest = info
        # Manifest keys before this one were not listed: storage lost them.
        while self._next is not _DONE and str(self._next) < info.key:
            self._lost(str(self._next))
            self._advance()
        if self._next == info.key:
            self._advance()

    def finish(self) -> None:
        """The listing ended: what the manifest still selects is missing."""
        while self._next is not _DONE:
            self._lost(str(self._next))
            self._advance()
