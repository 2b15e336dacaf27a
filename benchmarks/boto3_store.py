"""The S3 store as it was before obstore (boto3), kept only as the benchmarks' baseline.

``bench_s3_store.py`` measures the package's obstore store against it in the same run. It is
the previous ``storage/s3.py`` store unchanged but for its name and for taking a ready boto3
client (``SeaweedFSServer.client()``); ``read_many`` is the interface's default (reads on a
thread pool, etag from the content).
"""

from __future__ import annotations

__all__ = ["Boto3ArtefactStore"]

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING

from factflow_replay_dagster.errors import ArtefactNotFoundError, SettingsError, StorageError
from factflow_replay_dagster.redaction import Redactor
from factflow_replay_dagster.storage.base import ArtefactStore, ObjectInfo, check_key, check_prefix

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import ListObjectsV2RequestTypeDef

#: Error codes S3 (and SeaweedFS) use for "no such object"; HEAD answers carry only the status.
_NOT_FOUND_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
#: S3 errors can quote URLs with userinfo; the store holds no URL password of its own.
_SCRUB = Redactor()


def _etag(value: str) -> str:
    return value.strip('"')


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


class Boto3ArtefactStore(ArtefactStore):
    """Objects in ``bucket`` under ``prefix``, through a boto3 client (e.g. ``S3Resource``'s).

    Keys given and returned are relative to ``prefix``. Botocore errors are translated at this
    boundary: a missing object becomes
    :class:`~factflow_replay_dagster.errors.ArtefactNotFoundError`, anything else a
    :class:`~factflow_replay_dagster.errors.StorageError` naming the bucket and key.
    A missing bucket on ``read``/``list`` is named as such; on ``stat`` S3 answers a bare 404,
    so it reads as a missing object. The client is closed by :meth:`close` only when
    ``close_client`` is true (the store does not own a client it was handed).
    """

    def __init__(
        self,
        client: S3Client,
        bucket: str,
        *,
        prefix: str = "",
        page_size: int = 1000,
        close_client: bool = False,
    ) -> None:
        if not bucket or "/" in bucket:
            raise SettingsError(f"invalid S3 bucket name {bucket!r}")
        if not 1 <= page_size <= 1000:
            raise SettingsError(f"page_size must be between 1 and 1000, not {page_size}")
        prefix = check_prefix(prefix.strip("/"))
        self._client = client
        self.bucket = bucket
        self.prefix = f"{prefix}/" if prefix else ""
        self.page_size = page_size
        self.close_client = close_client
        self.location = f"s3://{bucket}/{self.prefix}"

    def __repr__(self) -> str:
        return f"Boto3ArtefactStore({self.location!r}, page_size={self.page_size})"

    # -- errors ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def _translating(self, action: str, key: str) -> Iterator[None]:
        """Turn botocore exceptions into this package's storage errors naming bucket and key."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            yield
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code") or "")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in _NOT_FOUND_CODES or (not code and status == 404):
                raise ArtefactNotFoundError(self.location, key) from exc
            if code == "NoSuchBucket":
                raise StorageError(
                    f"S3 bucket {self.bucket!r} does not exist (while trying to {action} "
                    f"{key!r} in {self.location})"
                ) from exc
            message = _SCRUB.scrub(str(error.get("Message") or ""))[:200]
            raise StorageError(
                f"S3 error {code or status} while trying to {action} {key!r} in bucket "
                f"{self.bucket!r} ({self.location})" + (f": {message}" if message else "")
            ) from exc
        except BotoCoreError as exc:
            raise StorageError(
                f"S3 request failed while trying to {action} {key!r} in bucket {self.bucket!r} "
                f"({self.location}): {type(exc).__name__}: {_SCRUB.scrub(str(exc))}"
            ) from exc

    # -- the interface -----------------------------------------------------------------------

    def list(self, prefix: str, *, start_after: str | None = None) -> Iterator[ObjectInfo]:
        check_prefix(prefix)
        return self._list(prefix, start_after)

    def _list(self, prefix: str, start_after: str | None) -> Iterator[ObjectInfo]:
        request: ListObjectsV2RequestTypeDef = {
            "Bucket": self.bucket,
            "Prefix": self.prefix + prefix,
            "MaxKeys": self.page_size,
        }
        if start_after and not start_after.startswith(prefix):
            if start_after > prefix:
                return  # every key under the prefix sorts before start_after
            start_after = None  # every key under the prefix sorts after it
        if start_after:
            # Only sent when under the prefix: SeaweedFS returns nothing for one before it.
            request["StartAfter"] = self.prefix + start_after
        strip = len(self.prefix)
        while True:
            with self._translating("list", prefix):
                page = self._client.list_objects_v2(**request)
            for item in page.get("Contents", []):
                yield ObjectInfo(
                    key=item["Key"][strip:],
                    size=item["Size"],
                    etag=_etag(item["ETag"]),
                    last_modified=_utc(item["LastModified"]),
                )
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return
            # The token carries the position; StartAfter only matters for the first page.
            request.pop("StartAfter", None)
            request["ContinuationToken"] = token

    def read(self, key: str) -> bytes:
        check_key(key)
        with self._translating("read", key):
            response = self._client.get_object(Bucket=self.bucket, Key=self.prefix + key)
            body = response["Body"]
            try:
                return body.read()
            finally:
                body.close()

    def write(self, key: str, data: bytes) -> ObjectInfo:
        check_key(key)
        with self._translating("write", key):
            response = self._client.put_object(Bucket=self.bucket, Key=self.prefix + key, Body=data)
        # PUT returns no Last-Modified; the response date is the same second S3 records.
        date = response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
        try:
            moment = parsedate_to_datetime(date) if date else datetime.now(UTC)
        except (TypeError, ValueError):
            moment = datetime.now(UTC)
        return ObjectInfo(
            key=key, size=len(data), etag=_etag(response["ETag"]), last_modified=_utc(moment)
        )

    def stat(self, key: str) -> ObjectInfo:
        check_key(key)
        with self._translating("stat", key):
            response = self._client.head_object(Bucket=self.bucket, Key=self.prefix + key)
        return ObjectInfo(
            key=key,
            size=response["ContentLength"],
            etag=_etag(response["ETag"]),
            last_modified=_utc(response["LastModified"]),
        )

    def close(self) -> None:
        if self.close_client:
            self._client.close()
