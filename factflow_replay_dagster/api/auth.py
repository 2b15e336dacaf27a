"""Bearer tokens: required on every path but ``/healthz``, compared in constant time, never
logged; a token in the query string is refused; no token means loopback only.

The check is an ASGI middleware, so it runs before anything else (routing, body parsing):
a refused request reads nothing, starts nothing and answers 401 with an error body.
"""

from __future__ import annotations

__all__ = ["PUBLIC_PATHS", "QUERY_TOKEN_NAMES", "TokenAuth", "check_bind", "is_loopback"]

import hmac
import ipaddress
import json
from collections.abc import Sequence
from urllib.parse import parse_qsl

from pydantic import SecretStr
from starlette.types import ASGIApp, Receive, Scope, Send

from ..errors import SettingsError

#: Paths answered without a token.
PUBLIC_PATHS = frozenset({"/healthz"})
#: Query parameters that carry a token where it would end up in logs and histories.
QUERY_TOKEN_NAMES = frozenset({"token", "access_token", "api_key", "apikey", "bearer"})


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address, or ``localhost``) is a loopback address."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, tokens: Sequence[SecretStr]) -> None:
    """Refuse to serve without a token anywhere but on a loopback address."""
    if not tokens and not is_loopback(host):
        raise SettingsError(
            f"refusing to serve the HTTP API on {host!r} without a token: set "
            "FACTFLOW_API_TOKENS (comma-separated bearer tokens), or serve on 127.0.0.1"
        )


class TokenAuth:
    """ASGI middleware: a valid ``Authorization: Bearer <token>`` on every path but
    :data:`PUBLIC_PATHS` (none needed when no token is configured: loopback only, see
    :func:`check_bind`); any request with a token in its query string is refused."""

    def __init__(self, app: ASGIApp, *, tokens: Sequence[SecretStr]) -> None:
        self.app = app
        self._tokens = [t.get_secret_value().encode() for t in tokens]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        query = scope.get("query_string", b"").decode("latin-1")
        names = {name.lower() for name, _ in parse_qsl(query, keep_blank_values=True)}
        if names & QUERY_TOKEN_NAMES:
            await _refuse(
                send,
                "token_in_query",
                "tokens are accepted in the Authorization header only, never in the query "
                "string (it is logged); this request was not processed",
            )
            return
        if self._tokens and scope["path"] not in PUBLIC_PATHS and not self._valid(scope):
            await _refuse(
                send, "unauthorized", "a valid bearer token is required (Authorization: Bearer ...)"
            )
            return
        await self.app(scope, receive, send)

    def _valid(self, scope: Scope) -> bool:
        given = b""
        for name, value in scope.get("headers", ()):
            if name.lower() == b"authorization":
                scheme, _, credentials = value.partition(b" ")
                if scheme.lower() == b"bearer":
                    given = credentials.strip()
        # Compared against every configured token, whatever matched: the time taken says
        # nothing about which token, or how much of one, was right.
        matched = False
        for token in self._tokens:
            matched |= hmac.compare_digest(given, token)
        return matched and bool(given)


async def _refuse(send: Send, code: str, message: str) -> None:
    body = json.dumps({"code": code, "message": message, "field": None}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 401,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"www-authenticate", b'Bearer realm="factflow-replay"'),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
