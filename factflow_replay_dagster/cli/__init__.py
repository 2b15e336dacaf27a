"""The ``factflow-replay`` command line: a thin click layer over the library."""

from __future__ import annotations

__all__ = ["cli", "main"]

from . import api, demo, execution, pipeline, recover, replay  # noqa: F401 - registers commands
from ._app import cli, main
