"""What every route takes: the app's :class:`~factflow_replay_dagster.api.context.ApiContext`."""

from __future__ import annotations

__all__ = ["Context"]

from typing import Annotated

from fastapi import Depends, Request

from ..context import ApiContext


def _context(request: Request) -> ApiContext:
    context: ApiContext = request.app.state.context
    return context


#: A route parameter receiving the app's context.
Context = Annotated[ApiContext, Depends(_context)]
