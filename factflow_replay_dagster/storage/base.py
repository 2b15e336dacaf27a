"""The artefact store interface: list, read, write and check objects under the storage layout."""

from __future__ import annotations

__all__ = [
    "MAX_KEY_BYTES",
    "ArtefactStore",
    "ObjectInfo",
    "PrefixSummary",
    "StoredObject",
    "check_key",
    "check_prefix",
    "content_etag",
    "read_ahead",
    "summarize",
]

import abc
import hashlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from .._closing import Closing
from ..errors import ArtefactNotFoundError, InvalidIdError, InvalidInputError


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """One stored object, as a listing returns it.

    ``key`` is relative to the store's root (``executions/<execution>/...``); ``etag`` is the
    hex MD5 of the content for single-part objects (the S3 convention). A store that keeps
    no etag (a local folder) lists ``None`` rather than read every object to hash it;
    :meth:`ArtefactStore.read_many` gives it with the content, which it reads anyway.
    """

    key: str
    size: int
    etag: str | None
    last_modified: datetime


def content_etag(data: bytes) -> str:
    """The etag of ``data`` as S3 gives it for a single-part object: its hex MD5."""
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def check_prefix(prefix: str) -> str:
    """Reject prefixes that could escape the store's root (absolute, ``..``, NUL)."""
    if prefix.startswith("/") or "\x00" in prefix or "\\" in prefix:
        raise InvalidIdError("object", prefix, "a storage prefix must be relative and plain")
    if any(part in ("..", ".") for part in prefix.split("/")):
        raise InvalidIdError("object", prefix, "contains '..' or '.' (path traversal)")
    return prefix


#: The longest key (UTF-8 bytes): S3's limit, and the execution store's key columns'.
MAX_KEY_BYTES = 1024


def check_key(key: str) -> str:
    """Like :func:`check_prefix`; a key must name an object (no empty segment) and hold at
    most :data:`MAX_KEY_BYTES` bytes."""
    check_prefix(key)
    if not key or any(part == "" for part in key.split("/")):
        raise InvalidIdError("object", key, "a key must not be empty or have empty segments")
    size = len(key.encode("utf-8", "surrogatepass"))
    if size > MAX_KEY_BYTES:
        reason = f"a key of {size:,} bytes (UTF-8), at most {MAX_KEY_BYTES:,}"
        raise InvalidIdError("object", key[:60] + "...", reason)
    return key


class ArtefactStore(Closing, abc.ABC):
    """Where stages store artefacts; the source of truth replay reads from.

    Implementations: :class:`~factflow_replay_dagster.storage.local.LocalArtefactStore`
    (a folder) and :class:`~factflow_replay_dagster.storage.s3.S3ArtefactStore` (obstore).
    Keys are validated with :func:`check_key`; a missing object raises
    :class:`~factflow_replay_dagster.errors.ArtefactNotFoundError` naming the location and key.
    """

    #: A human description of where objects live (``s3://bucket/prefix``, ``folder /path``),
    #: used in errors; it never contains a secret.
    location: str

    @abc.abstractmethod
    def list(self, prefix: str, *, start_after: str | None = None) -> Iterator[ObjectInfo]:
        """Stream the objects whose key starts with ``prefix`` in lexicographic key order.

        ``start_after`` skips every key up to and including it (resume). Memory stays bounded
        whatever the number of objects: results are fetched page by page.
        """

    @abc.abstractmethod
    def read(self, key: str) -> bytes:
        """Return one object's bytes."""

    def list_keys(self, prefix: str, *, start_after: str | None = None) -> Iterator[str]:
        """Like :meth:`list`, keys only: what publishing needs (sizes come with the bodies),
        which a store may list faster (a folder need not stat every file)."""
        return (info.key for info in self.list(prefix, start_after=start_after))

    def read_many(self, keys: Iterable[str], *, concurrency: int = 8) -> Iterator[StoredObject]:
        """Each object of ``keys``, in their order, with its etag, with up to
        ``concurrency`` reads in flight ahead of the consumer (memory stays bounded by that).

        A missing object raises
        :class:`~factflow_replay_dagster.errors.ArtefactNotFoundError` at its position, after
        the objects before it were yielded. This default reads on a thread pool and takes the
        etag from the content; stores override it with something faster.
        """
        return read_ahead(self._read_with_etag, keys, concurrency)

    def _read_with_etag(self, key: str) -> StoredObject:
        data = self.read(key)
        return StoredObject(key, content_etag(data), data)

    @abc.abstractmethod
    def write(self, key: str, data: bytes) -> ObjectInfo:
        """Store ``data`` under ``key`` atomically (a reader never sees half an object)."""

    @abc.abstractmethod
    def stat(self, key: str) -> ObjectInfo:
        """Return one object's size, etag and modification time."""

    def exists(self, key: str) -> bool:
        """Whether ``key`` is stored."""
        try:
            self.stat(key)
        except ArtefactNotFoundError:
            return False
        return True


class StoredObject(NamedTuple):
    """One object as :meth:`ArtefactStore.read_many` reads it: key, etag and content."""

    key: str
    etag: str
    data: bytes


@dataclass(frozen=True, slots=True)
class PrefixSummary:
    """What a prefix holds: how many objects, how many bytes, the first and last key."""

    count: int
    bytes: int
    first_key: str | None
    last_key: str | None


def summarize(store: ArtefactStore, prefix: str) -> PrefixSummary:
    """Count what ``prefix`` holds in one streamed listing (memory does not grow)."""
    count = size = 0
    first = last = None
    for info in store.list(prefix):
        count += 1
        size += info.size
        first = first or info.key
        last = info.key
    return PrefixSummary(count, size, first, last)


def read_ahead(
    fetch: Callable[[str], StoredObject], keys: Iterable[str], concurrency: int
) -> Iterator[StoredObject]:
    """``fetch(key)`` for each of ``keys`` on a pool of ``concurrency`` threads, yielded in
    the keys' order: reads that wait on the network overlap, and at most ``concurrency`` of
    them run or wait ahead of the consumer. A failed read raises at its position, after
    everything before it was yielded; reads not started yet are then cancelled.

    :meth:`ArtefactStore.read_many` for stores whose reads release the GIL."""
    if concurrency < 1:
        raise InvalidInputError(f"concurrency must be at least 1, not {concurrency}")
    pending: deque[Future[StoredObject]] = deque()
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="read-ahead") as pool:
        try:
            for key in keys:
                pending.append(pool.submit(fetch, key))
                if len(pending) > concurrency:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()
