"""S3's string-prefix listing (with an exact ``start_after``) on top of obstore's listing.

obstore matches a listing prefix by path segment: it sends ``prefix + "/"``, so
``executions/e1`` never lists ``executions/e10/...``, which S3 (and this package's contract)
would. A prefix that does not end with ``/`` is therefore served by listing its folder (up
to the last ``/``) from just before the prefix, filtering, and stopping at the first entry of
the folder that sorts past it. obstore's ``offset`` is S3's ``start-after``, but it normalises
it (a trailing ``/`` is dropped, which on SeaweedFS would skip that directory's subtree), so a
``start_after`` is sent only when it survives unchanged, and always also applied here.
"""

from __future__ import annotations

__all__ = ["PAGE_SIZE", "list_objects"]

from collections.abc import Iterator
from typing import TYPE_CHECKING

import obstore

from ..errors import InvalidIdError

if TYPE_CHECKING:
    from obstore import ObjectMeta
    from obstore.store import S3Store

    from ._s3_errors import S3ErrorTranslator

#: Objects per listing request: S3's default (and maximum) page. obstore cannot ask for fewer.
PAGE_SIZE = 1000


def _sent_unchanged(cursor: str) -> bool:
    """Whether obstore sends ``cursor`` as ``start-after`` as it is (its path parser refuses
    empty, ``.``/``..`` and control-character segments and strips a trailing ``/``)."""
    if not cursor or cursor.startswith("/") or cursor.endswith("/"):
        return False
    return all(
        part and part not in (".", "..") and not any(ord(c) < 32 or ord(c) == 127 for c in part)
        for part in cursor.split("/")
    )


def list_objects(
    store: S3Store, prefix: str, start_after: str | None, errors: S3ErrorTranslator
) -> Iterator[ObjectMeta]:
    """The objects whose key starts with ``prefix`` (a plain string prefix, as S3 has it) and
    sorts after ``start_after``, in the server's order, one page of :data:`PAGE_SIZE` at a
    time; obstore's errors come out translated by ``errors``."""
    if start_after and not start_after.startswith(prefix):
        if start_after > prefix:
            return  # every key under the prefix sorts before start_after
        start_after = None  # every key under the prefix sorts after it
    cut = prefix.rfind("/") + 1
    folder, rest = prefix[:cut], prefix[cut:]
    offset: str | None = None
    if start_after and _sent_unchanged(start_after):
        offset = start_after
    elif len(rest) > 1 and _sent_unchanged(prefix[:-1]):
        # Sorts before every key starting with the prefix, and names no directory holding one.
        offset = prefix[:-1]
    try:
        stream = obstore.list(
            store, folder.rstrip("/") or None, offset=offset, chunk_size=PAGE_SIZE
        )
    except ValueError as exc:  # a control character, which check_prefix lets through
        raise InvalidIdError("object", prefix, "not a valid S3 prefix") from exc
    while True:
        with errors.translating("list", prefix):
            chunk = next(stream, None)
        if chunk is None:
            return
        for meta in chunk:
            key = meta["path"]
            if start_after is not None and key <= start_after:
                continue
            if rest and not key.startswith(prefix):
                name = key[cut:].split("/", 1)[0]
                if name > rest and not name.startswith(rest):
                    return  # every later entry of the folder sorts after the prefix
                continue
            yield meta
