"""Loopback HTTP servers for S3 client tests: a counting forward proxy and a canned-answer stub.

The S3 store speaks through obstore, which has no request hooks: tests see its requests on the
wire instead, by routing a store through :class:`CountingProxy` (``S3Config.proxy_url``) or
pointing it at a :class:`StubS3` that answers what a test needs (403s, 500s, TLS, a silence).
"""

from __future__ import annotations

__all__ = ["Answer", "CountingProxy", "Request", "StubS3", "s3_error"]

import http.client
import ssl
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import NamedTuple
from urllib.parse import urlsplit

#: Hop-by-hop headers a proxy must not forward.
_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "te",
        "upgrade",
        "proxy-authorization",
        "proxy-authenticate",
        "trailer",
    }
)


class Request(NamedTuple):
    """One request as a server saw it: method, path with query, lower-cased headers."""

    method: str
    path: str
    headers: dict[str, str]


#: status, headers, body
Answer = tuple[int, dict[str, str], bytes]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: _LoopbackServer


class _LoopbackServer:
    """A handler class served on 127.0.0.1:<free port> from a daemon thread; ``with`` stops it."""

    scheme = "http"

    def __init__(self, handler: type[BaseHTTPRequestHandler], tls: ssl.SSLContext | None) -> None:
        self.requests: list[Request] = []
        self.lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), handler)
        self._server.owner = self
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
            self.scheme = "https"
        self.url = f"{self.scheme}://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def record(self, request: Request) -> None:
        with self.lock:
            self.requests.append(request)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> _LoopbackServer:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        pass  # tests do not want a line on stderr per request

    def _body(self) -> bytes | None:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else None

    def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        length = str(len(body))
        for name, value in headers.items():
            if name.lower() == "content-length":
                length = value if self.command == "HEAD" else length  # HEAD: the object's
            elif name.lower() not in _HOP:
                self.send_header(name, value)
        self.send_header("Content-Length", length)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _handle(self) -> None:
        raise NotImplementedError

    # http.server dispatches on these names.
    def do_GET(self) -> None:
        self._handle()

    def do_HEAD(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()


class _ProxyHandler(_Handler):
    def _handle(self) -> None:
        target = urlsplit(self.path)  # a forward proxy gets absolute URLs
        path = target.path + (f"?{target.query}" if target.query else "")
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
        self.server.owner.record(
            Request(self.command, path, {k.lower(): v for k, v in headers.items()})
        )
        body = self._body()
        connection = http.client.HTTPConnection(target.hostname or "", target.port, timeout=60)
        try:
            connection.request(self.command, path, body=body, headers=headers)
            response = connection.getresponse()
            data = response.read()
        finally:
            connection.close()
        self._send(response.status, dict(response.getheaders()), data)


class CountingProxy(_LoopbackServer):
    """A plain-HTTP forward proxy recording every request it forwards (``.requests``)."""

    def __init__(self) -> None:
        super().__init__(_ProxyHandler, None)


class _StubHandler(_Handler):
    def _handle(self) -> None:
        self._body()
        owner = self.server.owner
        assert isinstance(owner, StubS3)
        request = Request(self.command, self.path, {k.lower(): v for k, v in self.headers.items()})
        owner.record(request)
        self._send(*owner.answer(request))


class StubS3(_LoopbackServer):
    """Answers every request with ``answer(request)`` and records it; HTTPS with ``tls``."""

    def __init__(
        self, answer: Callable[[Request], Answer], *, tls: ssl.SSLContext | None = None
    ) -> None:
        self.answer = answer
        super().__init__(_StubHandler, tls)


def s3_error(status: int, code: str, message: str) -> Answer:
    """An S3 error answer, as AWS and SeaweedFS spell it."""
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message><RequestId>1</RequestId></Error>"
    ).encode()
    return status, {"Content-Type": "application/xml"}, body
