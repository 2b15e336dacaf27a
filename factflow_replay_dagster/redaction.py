"""Keep secrets out of everything shown: the one place URLs and error texts are redacted.

Everything the package prints, logs, stores as an error or hands to Dagster goes through
:func:`redact_url` (a URL shown as such) or a :class:`Redactor` (a text, such as a driver's
error message, that may quote a password it was given).
"""

from __future__ import annotations

__all__ = ["Redactor", "redact_url", "server_url"]

import re
from collections.abc import Iterable
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

#: Query parameters whose values are secrets (``?password=...`` and friends).
_SECRET_QUERY_KEYS = frozenset(
    {"password", "passwd", "secret", "token", "access_token", "sig", "signature"}
)
#: ``scheme://user:password@`` anywhere in a text (an error quoting a URL it was given).
_USERINFO = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^/@\s:]*):[^/@\s]+@")


def redact_url(url: str) -> str:
    """``url`` with any password (userinfo or query parameter) replaced by ``***``.

    A URL without a secret comes back unchanged (``sqlite:////abs/path`` keeps its slashes).
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    netloc, query = parts.netloc, parts.query
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        if ":" in userinfo:
            netloc = f"{userinfo.split(':', 1)[0]}:***@{host}"
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(k.lower() in _SECRET_QUERY_KEYS for k, _ in pairs):
            query = urlencode(
                [(k, "***" if k.lower() in _SECRET_QUERY_KEYS else v) for k, v in pairs],
                safe="*",
            )
    if (netloc, query) == (parts.netloc, parts.query):
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def server_url(url: str) -> str:
    """The server a URL names, for errors and logs: scheme, user, host, port and path only
    (``amqp://guest@127.0.0.1:5672/%2F``); no password, no query."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port is not None else host
    if parts.username:
        netloc = f"{parts.username}@{netloc}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class Redactor:
    """Scrubs known secrets, and the password of any ``scheme://user:password@``, out of a text.

    Build it with the URLs (or raw secrets) a component was configured with; its
    :meth:`scrub` then makes a driver's error message safe to show, whatever it quotes.
    """

    def __init__(self, *, urls: Iterable[str] = (), secrets: Iterable[str | None] = ()) -> None:
        found = {s for s in secrets if s}
        for url in urls:
            try:
                password = urlsplit(url).password or ""
            except ValueError:
                continue
            found.update({password, unquote(password)})
        # Longest first, so a secret that contains another is replaced whole.
        self._secrets = sorted(found - {""}, key=len, reverse=True)

    def scrub(self, text: str) -> str:
        """``text`` with every known secret, and every URL's password, replaced by ``***``."""
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return _USERINFO.sub(r"\g<head>:***@", text)
