"""Ready-made worlds for tests: components plus a parent execution of ``news`` that ran."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from factflow_replay_dagster.connect import Components, connect
from factflow_replay_dagster.executions import ExecutionRecord, ExecutionStatus
from factflow_replay_dagster.pipelines import sample_config
from factflow_replay_dagster.replay import DetachedReplayService
from factflow_replay_dagster.runtime import run_pipeline
from factflow_replay_dagster.settings import Settings
from factflow_replay_dagster.snapshot import ConfigSnapshot


@dataclass
class World:
    env: dict[str, str]
    components: Components
    news: ConfigSnapshot
    parent: ExecutionRecord

    def service(self, **options: int) -> DetachedReplayService:
        c = self.components
        return DetachedReplayService(
            artefacts=c.artefacts, executions=c.executions, publisher=c.publisher, **options
        )

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
        parent = run_pipeline(components, news, timeout=180)
        assert parent.status is ExecutionStatus.SUCCEEDED, parent.error
        yield World(dict(env), components, news, parent)


def small_news(documents: int = 40) -> ConfigSnapshot:
    """The news pipeline fetching only ``documents`` documents: for tests where size is not
    the point (recovery logic, refusals), four to six times faster than all 240."""
    fetch = "callable: factflow_replay_dagster.pipelines.news:fetch"
    options = f"{fetch}\n        options: {{limit: {documents}}}"
    text = sample_config("news").read_text().replace(fetch, options)
    return ConfigSnapshot.parse(text, source=f"news limited to {documents} documents")
