"""The ASGI app: FastAPI routes over the core, token authentication, errors as JSON."""

from __future__ import annotations

__all__ = ["create_app"]

import contextlib
from collections.abc import AsyncIterator
from importlib.metadata import version

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from ..settings import Settings
from .auth import TokenAuth
from .context import ApiContext
from .errors import install_error_handlers
from .launch import RunLauncher
from .routes import executions, health, replays

_DESCRIPTION = """\
Replay stored factflow artefacts into queues, rerun stages and recover failed executions, as
Dagster runs (the UI shows them). Every path but `/healthz` needs `Authorization: Bearer
<token>` (FACTFLOW_API_TOKENS); tokens in the query string are refused.
"""


def create_app(settings: Settings | None = None, *, launcher: RunLauncher | None = None) -> FastAPI:
    """The API over ``settings`` (default: the environment); ``launcher`` replaces the
    Dagster seam the settings name (:func:`~.launch.open_launcher`)."""
    settings = settings or Settings.from_env()
    context = ApiContext(settings, launcher=launcher)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            context.close()  # and the code server the Dagster seam started

    app = FastAPI(
        title="factflow-replay",
        version=version("factflow-replay-dagster"),
        description=_DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.context = context
    install_error_handlers(app)
    for module in (health, executions, replays):
        app.include_router(module.router)
    app.add_middleware(TokenAuth, tokens=settings.api_tokens)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _openapi(app: FastAPI) -> dict[str, object]:
    """The OpenAPI document, with the bearer scheme on every path but ``/healthz``."""
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        schema.setdefault("components", {})["securitySchemes"] = {
            "bearer": {"type": "http", "scheme": "bearer"}
        }
        for path, operations in schema.get("paths", {}).items():
            for operation in operations.values():
                operation["security"] = [] if path == "/healthz" else [{"bearer": []}]
        app.openapi_schema = schema
    return app.openapi_schema
