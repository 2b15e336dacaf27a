"""obstore's exceptions, translated at the S3 store's boundary into errors naming bucket and key.

obstore raises the builtin ``FileNotFoundError`` for any 404 (a missing key *and* a missing
bucket: the S3 error code in the message tells them apart; a HEAD answer has no body, so there
a missing bucket reads as a missing object, as it did with boto3), ``PermissionDeniedError``
for 403, ``GenericError`` for everything else (every failed listing, 5xx after the retries,
connection failures, timeouts), and ``ValueError`` for a key it cannot parse. Its messages
quote the request URL (with any ``user:password@`` of the endpoint) and the S3 error body;
what is kept of them goes through a :class:`~factflow_replay_dagster.redaction.Redactor`.
"""

from __future__ import annotations

__all__ = ["S3ErrorTranslator"]

import contextlib
import re
from collections.abc import Iterator

from obstore.exceptions import BaseError as ObstoreError

from ..errors import ArtefactNotFoundError, InvalidIdError, StorageError
from ..redaction import Redactor

_CODE = re.compile(r"<Code>([^<]{1,64})</Code>")
_MESSAGE = re.compile(r"<Message>([^<]{0,300})</Message>")
_STATUS = re.compile(r"status code: (\d{3})")
_REQUEST = re.compile(r"Error performing ([A-Z]+) (\S+) in ")
_RETRIES = re.compile(r"after (\d+) retries")
_HTTP_KIND = re.compile(r"HttpError \{\s*kind: (\w+)")
#: What obstore's kinds of HTTP failure mean, in words.
_HTTP_KINDS = {
    "Connect": "could not connect",
    "Timeout": "timed out",
    "Request": "request failed",
    "Decode": "could not decode the answer",
    "Interrupted": "connection interrupted",
}
#: Codes that mean "no such object" (S3's and SeaweedFS's).
_NOT_FOUND_CODES = frozenset({"NoSuchKey", "NotFound"})


class S3ErrorTranslator:
    """Turns obstore's exceptions into this package's storage errors for one store.

    ``translating(action, key)`` wraps each call: a missing object becomes
    :class:`~factflow_replay_dagster.errors.ArtefactNotFoundError` (location and key), an
    unparseable key :class:`~factflow_replay_dagster.errors.InvalidIdError`, anything else a
    :class:`~factflow_replay_dagster.errors.StorageError` naming the action, key and bucket.
    """

    def __init__(self, bucket: str, location: str, redactor: Redactor) -> None:
        self.bucket = bucket
        self.location = location
        self._redactor = redactor

    @contextlib.contextmanager
    def translating(self, action: str, key: str) -> Iterator[None]:
        try:
            yield
        except ValueError as exc:
            if not str(exc).startswith("Could not parse path"):
                raise
            if action == "list":  # an object written by another tool that obstore cannot name
                raise StorageError(
                    f"cannot {action} {key!r} in bucket {self.bucket!r} ({self.location}): "
                    f"it holds a key obstore cannot parse: {self._first_line(exc)}"
                ) from exc
            raise InvalidIdError("object", key, "not a valid S3 object path here") from exc
        except (ObstoreError, OSError) as exc:
            raise self.error(action, key, exc) from exc

    def error(self, action: str, key: str, exc: BaseException) -> StorageError:
        """The package's error for ``exc``, raised while trying to ``action`` ``key``."""
        text = str(exc)
        code = _group(_CODE, text)
        status = _group(_STATUS, text)
        if code == "NoSuchBucket" or (action == "write" and isinstance(exc, FileNotFoundError)):
            return StorageError(
                f"S3 bucket {self.bucket!r} does not exist (while trying to {action} {key!r} "
                f"in {self.location})"
            )
        where = f"while trying to {action} {key!r} in bucket {self.bucket!r} ({self.location})"
        if isinstance(exc, FileNotFoundError) and (code in _NOT_FOUND_CODES or not code):
            return ArtefactNotFoundError(self.location, key)
        retries = _group(_RETRIES, text)
        attempts = f" after {int(retries) + 1} attempts" if retries and int(retries) else ""
        if code or status:
            message = self._redactor.scrub(_group(_MESSAGE, text))[:200]
            what = f"{code} (HTTP {status})" if code and status else code or f"HTTP {status}"
            return StorageError(
                f"S3 error {what} {where}{attempts}" + (f": {message}" if message else "")
            )
        kind = _HTTP_KINDS.get(_group(_HTTP_KIND, text))
        request = _REQUEST.search(text)
        if kind and request:
            url = self._redactor.scrub(request.group(2))
            return StorageError(
                f"S3 request failed {where}: {kind} ({request.group(1)} {url}){attempts}"
            )
        return StorageError(
            f"S3 request failed {where}: {type(exc).__name__}: {self._first_line(exc)}"
        )

    def _first_line(self, exc: BaseException) -> str:
        return self._redactor.scrub(str(exc).split("\n", 1)[0])[:300]


def _group(pattern: re.Pattern[str], text: str) -> str:
    found = pattern.search(text)
    return found.group(1) if found else ""
