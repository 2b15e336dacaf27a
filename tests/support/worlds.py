"""Ready-made worlds for tests: components plus a parent execution of ``news`` that ran, and
what every test about ``news`` needs to know of it."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from factflow_replay_dagster.connect import Components, connect
from factflow_replay_dagster.executions import ExecutionRecord, ExecutionStatus
from factflow_replay_dagster.layout import stage_prefix
from factflow_replay_dagster.pipelines import sample_config
from factflow_replay_dagster.queues.embedded import EmbeddedQueue
from factflow_replay_dagster.replay import DetachedReplayService
from factflow_replay_dagster.runtime import run_pipeline
from factflow_replay_dagster.settings import Settings
from factflow_replay_dagster.snapshot import ConfigSnapshot

#: The (route, stage) pairs of ``news``, in order.
NEWS_STAGES = [
    ("ingest", "fetch"),
    ("ingest", "parse"),
    ("enrich", "annotate"),
    ("enrich", "index"),
]
#: The object names every stage of a full ``news`` run stores.
NEWS_OBJECTS = [f"news-{i:04d}.json" for i in range(1, 241)]


def stored_names(components: Components, execution_id: str, route: str, stage: str) -> list[str]:
    """The object names stored for one stage of one execution, in listing order."""
    prefix = stage_prefix(execution_id, route, stage)
    return [info.key[len(prefix) :] for info in components.artefacts.list(prefix)]


def news_with(stage: str, options: str) -> str:
    """The ``news`` config text with ``options`` (a YAML flow mapping) given to ``stage``."""
    line = f"callable: factflow_replay_dagster.pipelines.news:{stage}"
    text = sample_config("news").read_text()
    assert text.count(line) == 1, line
    return text.replace(line, f"{line}\n        options: {options}")


@dataclass
class World:
    env: dict[str, str]
    components: Components
    news: ConfigSnapshot
    parent: ExecutionRecord

    def service(self, **options: float) -> DetachedReplayService:
        c = self.components
        return DetachedReplayService(
            artefacts=c.artefacts, executions=c.executions, publisher=c.publisher, **options
        )

    def emptied_queue(self, *names: str) -> EmbeddedQueue:
        """The embedded queue, with ``names`` (default: every queue of ``news``) emptied."""
        queue = self.components.publisher
        assert isinstance(queue, EmbeddedQueue)
        for name in names or self.news.config.queues():
            queue.purge(name)
        return queue

    def good_request(self, **overrides: object) -> dict[str, object]:
        request: dict[str, object] = {
            "source_execution_id": self.parent.id,
            "from_stage": "parse",
            "to_route": "enrich",
        }
        request.update(overrides)
        return request


def news_world(env: Mapping[str, str]) -> Iterator[World]:
    """Run ``news`` once with ``env``'s settings and yield the world (closed afterwards)."""
    settings = Settings.from_env(env)
    with connect(settings) as components:
        news = ConfigSnapshot.load(sample_config("news"))
        parent = run_pipeline(news, **components.runtime(), timeout=180)
        assert parent.status is ExecutionStatus.SUCCEEDED, parent.error
        yield World(dict(env), components, news, parent)


def small_news(documents: int = 40) -> ConfigSnapshot:
    """The news pipeline fetching only ``documents`` documents: for tests where size is not
    the point (recovery logic, refusals), four to six times faster than all 240."""
    text = news_with("fetch", f"{{limit: {documents}}}")
    return ConfigSnapshot.parse(text, source=f"news limited to {documents} documents")
