"""What the fault tests share: a stored parent to replay, an independent count of what reached
the queue, and the figures each test prints (also under xdist, in the run's summary)."""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from factflow_replay_dagster.connect import open_artefact_store, open_execution_store
from factflow_replay_dagster.executions import ExecutionStatus, ExecutionStore, ReplayRecord
from factflow_replay_dagster.layout import artefact_key
from factflow_replay_dagster.messages import ARTEFACT_TYPE, END_TYPE, artefact_message_id
from factflow_replay_dagster.pipelines import sample_config
from factflow_replay_dagster.settings import Settings
from factflow_replay_dagster.snapshot import ConfigSnapshot
from factflow_replay_dagster.storage.base import StoredObject, content_etag
from factflow_replay_dagster.storage.local import LocalArtefactStore

from .environments import drain

#: The user property the figures travel in, from an xdist worker to the summary.
FIGURES = "fault figures"


@dataclass(frozen=True)
class StoredParent:
    """A registered execution of ``news`` whose ``parse`` stage holds ``len(keys)`` objects."""

    id: str
    keys: list[str]
    message_ids: frozenset[str]  # what a replay of it sends, one id per artefact


def stored_parent(
    settings: Settings, parent_id: str, count: int, *, snapshot: ConfigSnapshot | None = None
) -> StoredParent:
    """Write ``count`` small ``parse`` artefacts of ``parent_id`` and register it (as
    ``execution register`` does): a parent to replay without running the pipeline.

    In a folder store the files are written directly (the store's own writes go through a
    temporary file and an fsync each: 20,000 of them took 50 s here); the etag, hence the
    message id, is the content's MD5 either way."""
    snapshot = snapshot or ConfigSnapshot.load(sample_config("news"))
    keys = [artefact_key(parent_id, "ingest", "parse", f"doc-{i:05d}.json") for i in range(count)]
    ids = set()
    with open_artefact_store(settings) as store, open_execution_store(settings) as executions:
        for n, key in enumerate(keys):
            body = b'{"doc": %d, "text": "%s"}' % (n, b"x" * 200)
            if isinstance(store, LocalArtefactStore):
                path = store.root / key
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(body)
                etag: str | None = content_etag(body)
            else:
                etag = store.write(key, body).etag
            assert etag is not None
            ids.add(artefact_message_id(parent_id, key, etag))
        executions.create_execution(
            parent_id, snapshot, origin="registered", status=ExecutionStatus.REGISTERED
        )
        executions.record_stored_stage(
            parent_id, "ingest", "parse", count=count, size=count * 220, keys=keys
        )
    return StoredParent(parent_id, keys, frozenset(ids))


class VanishingStore(LocalArtefactStore):
    """A real folder store where the object ``vanish`` (a key) disappears just before it is
    read, once: an artefact lost mid-replay."""

    vanish: str = ""

    def read_many(self, keys: Iterable[str], *, concurrency: int = 8) -> Iterator[StoredObject]:
        def deleting(keys: Iterable[str]) -> Iterator[str]:
            for key in keys:
                if self.vanish and key == self.vanish:
                    (self.root / key).unlink(missing_ok=True)
                    self.vanish = ""
                yield key

        return super().read_many(deleting(keys), concurrency=concurrency)


@dataclass(frozen=True)
class Received:
    """What an independent consumer took off a queue, by message id."""

    artefact_ids: list[str]
    end_markers: int

    @property
    def unique(self) -> set[str]:
        return set(self.artefact_ids)

    @property
    def duplicates(self) -> int:
        return len(self.artefact_ids) - len(self.unique)

    def most_repeated(self) -> int:
        return max(Counter(self.artefact_ids).values(), default=0)

    def __add__(self, other: Received) -> Received:
        ids = self.artefact_ids + other.artefact_ids
        return Received(ids, self.end_markers + other.end_markers)


def consume(amqp_url: str, queue: str) -> Received:
    """Take every message off ``queue`` (acknowledged): artefact ids and end markers."""
    ids: list[str] = []
    ends = 0
    for properties, _ in drain(amqp_url, queue):
        if properties.type == ARTEFACT_TYPE:
            ids.append(str(properties.message_id))
        elif properties.type == END_TYPE:
            ends += 1
    return Received(ids, ends)


def wait_for(what: str, check: Callable[[], Any], *, timeout: float, interval: float = 0.05) -> Any:
    """Poll ``check`` until it returns something truthy (returned); fail after ``timeout``
    seconds, a guard against a hang, not a measurement."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(interval)
    pytest.fail(f"{what}: not within {timeout:.0f} s")


def new_replay(store: ExecutionStore, known: set[str], *, confirmed: int) -> ReplayRecord | None:
    """The replay not in ``known`` once it has ``confirmed`` confirmed (None until then)."""
    for replay in store.list_replays():
        if replay.replay_id not in known and replay.confirmed >= confirmed:
            return replay
    return None


def record_figures(request: pytest.FixtureRequest, title: str, **figures: object) -> str:
    """Print the figures of a fault test and keep them for the run's summary."""
    return _keep(request.node, title, figures)


#: The tests running now (tests/faults/conftest.py keeps it): whom :func:`figure` reports for.
_running: list[pytest.Item] = []


@contextlib.contextmanager
def figures_of(item: pytest.Item) -> Iterator[None]:
    """While ``item`` runs, :func:`figure` keeps its lines for it."""
    _running.append(item)
    try:
        yield
    finally:
        _running.remove(item)


def figure(title: str, **figures: object) -> str:
    """:func:`record_figures` for the running test, from a helper that has no ``request``."""
    if not _running:
        raise RuntimeError("figure() outside a fault test (see tests/faults/conftest.py)")
    return _keep(_running[-1], title, figures)


def _keep(node: pytest.Item, title: str, figures: dict[str, object]) -> str:
    line = f"{title}: " + ", ".join(f"{name.replace('_', ' ')} {v}" for name, v in figures.items())
    node.user_properties.append((FIGURES, line))
    print(line)
    return line


def print_figures(terminalreporter: Any) -> None:
    """``pytest_terminal_summary``: every fault test's figures, passed or failed."""
    lines = [
        value
        for reports in terminalreporter.stats.values()
        for report in reports
        if getattr(report, "when", None) == "call"
        for key, value in getattr(report, "user_properties", ())
        if key == FIGURES
    ]
    if lines:
        terminalreporter.write_sep("-", "fault figures")
        for line in lines:
            terminalreporter.write_line(line)
