"""Package roots that export names without importing their modules until a name is used.

``import factflow_replay_dagster`` (and ``.replay``, ``.executions``) then stays cheap: the
command line starts without loading SQLAlchemy, pydantic models or the publisher.
"""

from __future__ import annotations

__all__ = ["lazy_exports"]

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, homes: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package``: ``homes`` maps each exported name to the
    submodule (relative to ``package``) that defines it; it is imported on first use."""

    def __getattr__(name: str) -> Any:  # noqa: N807 - it is the module's __getattr__
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f".{home}", package), name)
        setattr(importlib.import_module(package), name, value)
        return value

    return __getattr__
