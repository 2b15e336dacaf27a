"""Keep secrets out of everything shown: the one place URLs and error texts are redacted.

Everything the package prints, logs, stores as an error or hands to Dagster goes through
:func:`redact_url` (a URL shown as such), :func:`shown_url` (a setting's value an error
quotes, which may not even be a URL) or a :class:`Redactor` (a text, such as a driver's
error message, that may quote a password it was given).
"""

from __future__ import annotations

__all__ = ["Redactor", "redact_url", "server_url", "shown_url"]

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
    netloc, path, query, fragment = parts.netloc, parts.path, parts.query, parts.fragment
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        if ":" in userinfo:
            password = userinfo.split(":", 1)[1]
            netloc = f"{userinfo.split(':', 1)[0]}:***@{host}"
            # The same password elsewhere in the URL (a query option it was pasted into).
            scrub = Redactor(secrets=[password, unquote(password)]).scrub
            path, query, fragment = scrub(path), scrub(query), scrub(fragment)
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(k.lower() in _SECRET_QUERY_KEYS for k, _ in pairs):
            query = urlencode(
                [(k, "***" if k.lower() in _SECRET_QUERY_KEYS else v) for k, v in pairs],
                safe="*",
            )
    if (netloc, path, query, fragment) == (parts.netloc, parts.path, parts.query, parts.fragment):
        return url
    return urlunsplit((parts.scheme, netloc, path, query, fragment))


#: What an error shows instead of a value that does not parse as a URL.
NOT_SHOWN = "<not shown: not a URL, and it may hold a password>"


def shown_url(url: str) -> str:
    """A setting's value as an error may quote it: :func:`redact_url` of it when it parses as
    ``scheme://...`` (a number for a port, closed brackets), else :data:`NOT_SHOWN`.

    A value that does not parse can hold a password no redaction finds: ``amqp://guest:pw/``
    (the host forgotten) reads the password as a port, and a secret pasted into the wrong
    variable, or a libpq ``host=... password=...`` string, is no URL at all.
    """
    head, sep, _ = url.partition("://")
    if not sep or not head:
        return NOT_SHOWN
    try:
        _ = urlsplit(url).port
    except ValueError:
        return NOT_SHOWN
    return redact_url(url)


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
