"""One way to be a context manager: ``with thing:`` calls ``thing.close()`` on the way out.

Artefact stores, publishers, consumers, the execution store and
:class:`~factflow_replay_dagster.connect.Components` all hold files or connections; they
inherit this rather than each writing the same ``__enter__``/``__exit__``.
"""

from __future__ import annotations

__all__ = ["Closing"]

from typing import Self


class Closing:
    """``with`` support for anything with a :meth:`close`."""

    def close(self) -> None:
        """Release what this object holds; the default holds nothing."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
