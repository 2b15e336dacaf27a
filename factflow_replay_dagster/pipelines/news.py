"""Stages of the sample ``news`` pipeline: fetch bundled documents, parse, annotate, index.

Any stage fails on purpose when its name (or ``route/stage``) is listed in the environment
variable ``FACTFLOW_FAIL_STAGES`` (comma-separated) or its options say ``fail: true``;
``fail_every: N`` fails only documents whose number is a multiple of N (a failure halfway).
``delay_ms`` slows a stage down, for tests that kill a worker mid-stage.
"""

from __future__ import annotations

__all__ = ["annotate", "fetch", "index", "parse"]

import json
import os
import re
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..runtime.stages import Output, StageContext

DATA = Path(__file__).with_name("data") / "news.jsonl"
_WORD = re.compile(r"[A-Za-z][A-Za-z-]+")
_STOP = frozenset(
    (
        "the",
        "a",
        "of",
        "and",
        "in",
        "to",
        "for",
        "on",
        "with",
        "after",
        "before",
        "during",
        "while",
        "its",
        "their",
        "this",
        "that",
        "more",
        "less",
        "than",
        "under",
        "over",
    )
)


class InjectedFailureError(RuntimeError):
    """Raised by a stage that was told to fail (recovery tests and demos)."""


def _prepare(ctx: StageContext, document_id: str | None = None) -> None:
    delay = float(ctx.option("delay_ms", 0))
    if delay:
        time.sleep(delay / 1000)
    listed = {s.strip() for s in os.environ.get("FACTFLOW_FAIL_STAGES", "").split(",") if s}
    if ctx.stage in listed or f"{ctx.route}/{ctx.stage}" in listed or ctx.option("fail", False):
        every = int(ctx.option("fail_every", 1))
        number = int(document_id.rsplit("-", 1)[-1]) if document_id else 0
        if number % every == 0:
            raise InjectedFailureError(
                f"stage {ctx.route}/{ctx.stage} was told to fail ({document_id})"
            )


def _document(ctx: StageContext) -> dict[str, Any]:
    if ctx.input is None:
        raise ValueError(f"stage {ctx.stage} needs an input artefact")
    document: dict[str, Any] = json.loads(ctx.input.data)
    return document


def _dump(document: dict[str, Any]) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def fetch(ctx: StageContext) -> Iterator[Output]:
    """The source: read the bundled documents (``limit`` caps them), one artefact each.

    Every fetch is counted in the execution store (counter ``fetch``), so tests can prove a
    replay or recovery did not fetch again.
    """
    _prepare(ctx)
    lines = DATA.read_text(encoding="utf-8").splitlines()
    limit = ctx.option("limit")
    if limit is not None:
        lines = lines[: int(limit)]
    ctx.count("fetch", len(lines))
    for line in lines:
        document = json.loads(line)
        yield Output(f"{document['id']}.json", _dump(document))


def parse(ctx: StageContext) -> Iterator[Output]:
    """Split the body into sentences and words."""
    document = _document(ctx)
    _prepare(ctx, document["id"])
    sentences = [s.strip() for s in document["body"].split(".") if s.strip()]
    words = _WORD.findall(document["body"])
    yield Output(
        f"{document['id']}.json",
        _dump({**document, "sentences": sentences, "word_count": len(words)}),
    )


def annotate(ctx: StageContext) -> Iterator[Output]:
    """Add entities (capitalised words) and keywords (frequent non-stop words)."""
    document = _document(ctx)
    _prepare(ctx, document["id"])
    text = f"{document['title']}. {document['body']}"
    entities = sorted({w for w in _WORD.findall(text) if w[0].isupper()})
    counts = Counter(w.lower() for w in _WORD.findall(text) if w.lower() not in _STOP)
    keywords = [word for word, _ in counts.most_common(5)]
    yield Output(
        f"{document['id']}.json",
        _dump({**document, "entities": entities, "keywords": keywords}),
    )


def index(ctx: StageContext) -> Iterator[Output]:
    """One index entry per document: id, title, topic and terms."""
    document = _document(ctx)
    _prepare(ctx, document["id"])
    terms = sorted(
        {*document.get("keywords", []), *(e.lower() for e in document.get("entities", []))}
    )
    yield Output(
        f"{document['id']}.json",
        _dump(
            {
                "id": document["id"],
                "title": document["title"],
                "topic": document["topic"],
                "terms": terms,
            }
        ),
    )
