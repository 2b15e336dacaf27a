"""What the S3 store tests share: a key, secrets to look for, configs for loopback stubs."""

from __future__ import annotations

__all__ = [
    "KEY",
    "SECRET",
    "TOKEN",
    "actions",
    "assert_names_bucket_and_key_only",
    "ok",
    "stub_config",
]

import uuid
from collections.abc import Callable
from typing import Any

from factflow_replay_dagster.errors import StorageError
from factflow_replay_dagster.storage.s3 import S3ArtefactStore, S3Config

from .http_stub import Answer, Request

KEY = "executions/e1/r/s/a.json"
SECRET = "very-secret-" + uuid.uuid4().hex
TOKEN = "token-" + SECRET


def stub_config(url: str, **changes: Any) -> S3Config:
    """Explicit keys, one attempt and short timeouts: a stub answers at once or never."""
    fields: dict[str, Any] = {
        "endpoint_url": url,
        "aws_access_key_id": "AKIDEXPLICIT",
        "aws_secret_access_key": SECRET,
        "aws_session_token": TOKEN,
        "max_attempts": 1,
        "connect_timeout": 2.0,
        "read_timeout": 1.0,
        "request_timeout": 2.0,
    }
    return S3Config(**(fields | changes))


def ok(body: bytes = b"xyz", etag: str = '"abc"') -> Callable[[Request], Answer]:
    def answer(request: Request) -> Answer:
        headers = {"ETag": etag, "Last-Modified": "Tue, 01 Dec 2026 10:00:00 GMT"}
        return 200, headers, body

    return answer


def actions(store: S3ArtefactStore) -> dict[str, Callable[[str], object]]:
    return {
        "read": store.read,
        "stat": store.stat,
        "list": lambda key: list(store.list(key)),
        "write": lambda key: store.write(key, b"x"),
        "read_many": lambda key: list(store.read_many([key])),
    }


def assert_names_bucket_and_key_only(error: StorageError, bucket: str, key: str) -> str:
    message = str(error)
    assert bucket in message
    assert key in message
    for secret in (SECRET, TOKEN, "pw-" + SECRET[-8:]):
        assert secret not in message
    return message
