"""The HTTP API (FastAPI, served by uvicorn): replays, reruns and recoveries as Dagster runs.

``factflow-replay api --host 127.0.0.1 --port 8080`` serves it; :func:`create_app` builds
the ASGI app for any other server. Its layer sits over the Dagster layer and the core
(``pyproject.toml``'s import-linter contracts), beside the command line.
"""

from __future__ import annotations

__all__ = ["create_app"]

from .app import create_app
