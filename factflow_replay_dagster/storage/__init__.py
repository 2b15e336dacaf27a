"""Where stage artefacts live: one interface, a local folder and S3 behind it."""

from __future__ import annotations

__all__ = [
    "ArtefactStore",
    "LocalArtefactStore",
    "ObjectInfo",
    "PrefixSummary",
    "S3ArtefactStore",
    "S3Config",
    "check_key",
    "check_prefix",
    "make_s3_client",
    "summarize",
]

from factflow_replay_dagster.storage.base import (
    ArtefactStore,
    ObjectInfo,
    PrefixSummary,
    check_key,
    check_prefix,
    summarize,
)
from factflow_replay_dagster.storage.local import LocalArtefactStore
from factflow_replay_dagster.storage.s3 import S3ArtefactStore, S3Config, make_s3_client
