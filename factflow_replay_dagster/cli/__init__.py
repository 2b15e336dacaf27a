"""The ``factflow-replay`` command line: a thin click layer over the library."""

from __future__ import annotations

__all__ = ["cli", "main"]

from . import pipeline  # noqa: F401 - registers its commands on the group
from ._app import cli, main
