"""The forms a secret can take in what is shown: raw, URL-quoted, JSON-escaped, base64."""

from __future__ import annotations

import base64
import json
from urllib.parse import quote, quote_plus


def secret_forms(secret: str) -> list[str]:
    """``secret`` as a log, a URL, a JSON document or an HTTP header could carry it."""
    forms = {
        secret,
        quote(secret, safe=""),
        quote(secret, safe="").lower(),
        quote(secret),
        quote_plus(secret),
        json.dumps(secret)[1:-1],
        secret.replace("/", "\\/"),
        base64.b64encode(secret.encode()).decode().rstrip("="),
    }
    return sorted(form for form in forms if form)
