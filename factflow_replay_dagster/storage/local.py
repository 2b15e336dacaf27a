"""The artefact store in a local folder, listing in exactly the order S3 would."""

from __future__ import annotations

__all__ = ["LocalArtefactStore"]

import errno
import hashlib
import heapq
import os
import stat as stat_mode
import tempfile
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from factflow_replay_dagster.errors import (
    ArtefactNotFoundError,
    InvalidIdError,
    SettingsError,
    StorageError,
)
from factflow_replay_dagster.storage.base import (
    ArtefactStore,
    ObjectInfo,
    StoredObject,
    check_key,
    check_prefix,
    content_etag,
)

#: The longest file name (bytes) on the file systems a folder store runs on (ext4, XFS, APFS).
NAME_MAX = 255
#: Hashing reads into one small reused buffer, so listing allocates little per object.
_CHUNK = 64 * 1024


def _md5_file(path: str) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    buffer = bytearray(_CHUNK)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as handle:  # noqa: PTH123 - a str path, see _info
        while count := handle.readinto(buffer):
            digest.update(view[:count])
    return digest.hexdigest()


def _smallest(items: Iterable[tuple[str, bool]], count: int) -> list[tuple[str, bool]]:
    """The ``count`` smallest of ``items``, sorted, holding at most ``2 * count`` at a time
    (a folder smaller than a window is sorted once, a bigger one pruned as it is read)."""
    kept: list[tuple[str, bool]] = []
    for item in items:
        kept.append(item)
        if len(kept) >= 2 * count:
            kept = heapq.nsmallest(count, kept)
    kept.sort()
    return kept[:count]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _usable(name: str) -> bool:
    """Names starting with ``.`` are temporary files; undecodable names are not keys."""
    if name.startswith("."):
        return False
    if name.isascii():
        return True
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class LocalArtefactStore(ArtefactStore):
    """Objects as files under ``root``; ``a/b/c`` is the file ``root/a/b/c``.

    Listing matches S3 exactly: keys in UTF-8 byte order (``s-x/obj`` before ``s/obj``), string
    prefixes (``executions/e1`` also matches ``executions/e10/...``), ``start_after`` as a plain
    key cutoff. Folders are walked lazily in that order; each folder is read in windows of
    ``page_size`` entries, one ``scandir`` pass per window keeping only the smallest names
    after the previous one, so memory is bounded by ``page_size`` times the folder depth,
    never by the number of objects. Listing reads no object: its etags are ``None``;
    :meth:`stat` hashes the one object it is asked about, :meth:`read_many` hashes what it
    reads anyway.

    Segments starting with ``.`` are reserved for temporary files and rejected as keys (ids
    never start with one). Symbolic links are not followed when listing, and a key whose path
    resolves outside ``root`` is rejected.
    """

    def __init__(self, root: Path, *, page_size: int = 100_000) -> None:
        if page_size < 1:
            raise SettingsError(f"page_size must be at least 1, not {page_size}")
        self.root = Path(root).resolve()
        self._root = str(self.root)
        self.page_size = page_size
        self.location = f"folder {self.root}"

    def __repr__(self) -> str:
        return f"LocalArtefactStore({str(self.root)!r}, page_size={self.page_size})"

    # -- paths -------------------------------------------------------------------------------

    def _path(self, key: str) -> Path:
        """The file for ``key``, refusing names this store reserves, names longer than a file
        system's (:data:`NAME_MAX`) and symlink escapes."""
        check_key(key)
        for part in key.split("/"):
            if part.startswith("."):
                raise InvalidIdError("object", key, "a segment starting with '.' is reserved")
            if len(part.encode("utf-8", "surrogatepass")) > NAME_MAX:
                raise InvalidIdError(
                    "object",
                    key[:60] + "...",
                    f"a segment of {len(part.encode('utf-8', 'surrogatepass')):,} bytes: a "
                    f"folder store's file names hold at most {NAME_MAX} (split the name with '/')",
                )
        path = self.root / key
        if not path.resolve().is_relative_to(self.root):
            raise InvalidIdError("object", key, f"resolves outside {self.location}")
        return path

    def _info(self, key: str, path: str, *, hashed: bool) -> ObjectInfo:
        """Stat (and with ``hashed``, hash) ``path``; a missing or non-regular file is a
        missing object.

        Plain strings, not :class:`~pathlib.Path`: pathlib interns every name it parses, which
        would make listing memory grow with the number of objects.
        """
        try:
            result = os.stat(path)  # noqa: PTH116 - a str path on purpose, see above
            regular = stat_mode.S_ISREG(result.st_mode)
            etag = _md5_file(path) if regular and hashed else None
        except (FileNotFoundError, NotADirectoryError) as exc:
            raise ArtefactNotFoundError(self.location, key) from exc
        except OSError as exc:
            raise StorageError(f"cannot stat {key!r} in {self.location}: {exc}") from exc
        if not regular:  # a folder (or a device) is not an object
            raise ArtefactNotFoundError(self.location, key)
        return ObjectInfo(
            key=key,
            size=result.st_size,
            etag=etag,
            last_modified=datetime.fromtimestamp(result.st_mtime, tz=UTC),
        )

    # -- listing -----------------------------------------------------------------------------

    def list(self, prefix: str, *, start_after: str | None = None) -> Iterator[ObjectInfo]:
        check_prefix(prefix)
        return self._list(prefix, start_after or "")

    def _list(self, prefix: str, cursor: str) -> Iterator[ObjectInfo]:
        for key in self._keys(prefix, cursor):
            try:
                yield self._info(key, f"{self._root}/{key}", hashed=False)
            except ArtefactNotFoundError:
                continue  # deleted since the walk saw it: S3 would no longer list it either

    def _keys(self, prefix: str, cursor: str) -> Iterator[str]:
        # Only the folder the prefix names up to its last '/' can hold matching keys.
        base = prefix[: prefix.rfind("/") + 1]
        if any(part.startswith(".") for part in base.split("/")[:-1]):
            return iter(())
        folder = f"{self._root}/{base}"  # always ends with "/"
        if not Path(folder).resolve().is_relative_to(self.root):
            return iter(())
        return self._walk(folder, base, prefix, cursor)

    def _walk(self, folder: str, rel: str, prefix: str, cursor: str) -> Iterator[str]:
        """The keys under ``folder`` (whose keys start with ``rel``) in S3 order, lazily.

        Each window of ``page_size`` entries comes from one ``scandir`` pass keeping only the
        smallest names after the previous window; a directory ``d`` sorts as ``d/``, so
        ``s-x/`` and ``s.y`` come before ``s/``, exactly as their keys do on S3.
        """
        after = ""
        while True:
            window = _smallest(self._entries(folder, rel, prefix, cursor, after), self.page_size)
            for sort_name, is_dir in window:
                if is_dir:
                    yield from self._walk(folder + sort_name, rel + sort_name, prefix, cursor)
                else:
                    yield rel + sort_name
            if len(window) < self.page_size:
                return
            after = window[-1][0]

    def _entries(
        self, folder: str, rel: str, prefix: str, cursor: str, after: str
    ) -> Iterator[tuple[str, bool]]:
        """``(sort name, is a directory)`` of the entries of ``folder`` that can hold a match.

        The sort name is the file name, or the directory name followed by ``/``; only names
        after ``after`` are produced, and only directories that may hold a key after
        ``cursor`` that starts with ``prefix``.
        """
        try:
            entries = os.scandir(folder)
        except (FileNotFoundError, NotADirectoryError):
            return
        except OSError as exc:
            raise StorageError(f"cannot list {rel or '/'!r} in {self.location}: {exc}") from exc
        with entries:
            for entry in entries:
                name = entry.name
                if not _usable(name):
                    continue
                if entry.is_dir(follow_symlinks=False):
                    name += "/"
                    if name <= after:
                        continue
                    sub = rel + name
                    # Every key inside starts with `sub`: skip it when that rules out a match.
                    if not (sub.startswith(prefix) or prefix.startswith(sub)):
                        continue
                    if sub <= cursor and not cursor.startswith(sub):
                        continue
                    yield name, True
                elif entry.is_file(follow_symlinks=False) and name > after:
                    key = rel + name
                    if key > cursor and key.startswith(prefix):
                        yield name, False

    # -- objects -----------------------------------------------------------------------------

    def read(self, key: str) -> bytes:
        path = self._path(key)
        try:
            if not path.is_file():
                raise ArtefactNotFoundError(self.location, key)
            return path.read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as exc:
            raise ArtefactNotFoundError(self.location, key) from exc
        except OSError as exc:
            raise StorageError(f"cannot read {key!r} in {self.location}: {exc}") from exc

    def list_keys(self, prefix: str, *, start_after: str | None = None) -> Iterator[str]:
        """The keys alone, without a ``stat`` of each file."""
        check_prefix(prefix)
        return self._keys(prefix, start_after or "")

    def read_many(self, keys: Iterable[str], *, concurrency: int = 8) -> Iterator[StoredObject]:
        """Sequential reads in the caller's thread (for local files a thread per read costs
        more than the read; ``concurrency`` does not apply); the etag is the content's MD5."""
        checked: dict[str, bool] = {}  # parent folder -> resolves inside the root
        for key in keys:
            check_key(key)
            folder, _, name = key.rpartition("/")
            inside = checked.get(folder)
            if inside is None:
                if len(checked) > 4096:
                    checked.clear()
                inside = checked[folder] = self._inside(folder)
            if not inside or name.startswith("."):
                self._path(key)  # raises the precise error
            data = self._read_file(key, f"{self._root}/{key}")
            yield StoredObject(key, content_etag(data), data)

    def _inside(self, folder: str) -> bool:
        """Whether ``folder`` (no dot segments) resolves inside the root, symlinks followed."""
        if any(part.startswith(".") for part in folder.split("/")):
            return False
        return Path(f"{self._root}/{folder}").resolve().is_relative_to(self.root)

    def _read_file(self, key: str, path: str) -> bytes:
        """The file's bytes in as few system calls as it takes (no buffered file object)."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except (FileNotFoundError, NotADirectoryError) as exc:
            raise ArtefactNotFoundError(self.location, key) from exc
        except OSError as exc:
            if exc.errno == errno.ELOOP:  # a symbolic link is not an object here
                raise ArtefactNotFoundError(self.location, key) from exc
            raise StorageError(f"cannot read {key!r} in {self.location}: {exc}") from exc
        try:
            parts: list[bytes] = []
            while part := os.read(fd, _CHUNK if not parts else 1 << 20):
                parts.append(part)  # on until the end of the file (a short read is not one)
        except IsADirectoryError as exc:
            raise ArtefactNotFoundError(self.location, key) from exc
        except OSError as exc:
            raise StorageError(f"cannot read {key!r} in {self.location}: {exc}") from exc
        finally:
            os.close(fd)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def stat(self, key: str) -> ObjectInfo:
        return self._info(key, str(self._path(key)), hashed=True)

    def write(self, key: str, data: bytes) -> ObjectInfo:
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # A name of its own, not the object's: ".<255-byte name>.<random>.tmp" is no name.
            fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".write-", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
                Path(temp).replace(path)
            except BaseException:
                Path(temp).unlink(missing_ok=True)
                raise
            _fsync_dir(path.parent)
            mtime = path.stat().st_mtime
        except OSError as exc:
            raise StorageError(f"cannot write {key!r} in {self.location}: {exc}") from exc
        return ObjectInfo(
            key=key,
            size=len(data),
            etag=content_etag(data),
            last_modified=datetime.fromtimestamp(mtime, tz=UTC),
        )
