"""Where stage artefacts live: one interface, a local folder and S3 behind it.

The stores are imported on first use, so importing the interface does not load obstore.
"""

from __future__ import annotations

__all__ = [
    "ArtefactStore",
    "LocalArtefactStore",
    "ObjectInfo",
    "PrefixSummary",
    "S3ArtefactStore",
    "S3Config",
    "StoredObject",
    "check_key",
    "check_prefix",
    "summarize",
]

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from .base import (
        ArtefactStore,
        ObjectInfo,
        PrefixSummary,
        StoredObject,
        check_key,
        check_prefix,
        summarize,
    )
    from .local import LocalArtefactStore
    from .s3 import S3ArtefactStore, S3Config

_HOMES = {
    **dict.fromkeys(
        [
            "ArtefactStore",
            "ObjectInfo",
            "PrefixSummary",
            "StoredObject",
            "check_key",
            "check_prefix",
            "summarize",
        ],
        "base",
    ),
    "LocalArtefactStore": "local",
    **dict.fromkeys(["S3ArtefactStore", "S3Config"], "s3"),
}

__getattr__ = lazy_exports(__name__, _HOMES)
