"""A real browser on a real ``dagster dev``: the asset graph of the news pipeline, and a replayed
partition whose page shows its provenance. Screenshots are kept in test-artifacts/."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from playwright.sync_api import Page, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from support.servers.dagster_dev import DagsterDev
from support.worlds import World, news_world

from factflow_replay_dagster.defs.definitions import build_definitions
from factflow_replay_dagster.executions import ExecutionStatus
from factflow_replay_dagster.runtime import run_until_finished
from factflow_replay_dagster.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[World, str]]:
    home = tmp_path_factory.mktemp("browser-home")
    env = {"FACTFLOW_HOME": str(home), "FACTFLOW_DISCOVERY_INTERVAL": "2"}
    for world in news_world(env):
        defs = build_definitions(Settings.from_env(world.env))
        with dg.instance_for_test() as scratch:
            result = defs.resolve_job_def("replay_job").execute_in_process(
                run_config=world.good_request(reason="shown in the browser"), instance=scratch
            )
        child = result.output_for_node("finish_replay").child_execution_id
        done = run_until_finished(
            child, world.news.config.queues(), **world.components.runtime(), timeout=180
        )
        assert done.status is ExecutionStatus.SUCCEEDED
        yield world, child


@pytest.fixture(scope="module")
def dev(scene: tuple[World, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[DagsterDev]:
    world, child = scene
    server = DagsterDev(
        ROOT / "workspace.yaml", base_dir=tmp_path_factory.mktemp("dev"), env=world.env
    )
    server.start()
    try:
        # Wait for the daemon's stored_artefacts_sensor to report the child's partition.
        with dg.DagsterInstance.from_config(str(server.home)) as instance:
            key = dg.AssetKey(["factflow", "news", "enrich", "annotate"])
            deadline = time.monotonic() + 120
            while not instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=key, asset_partitions=[child]), limit=1
            ).records:
                assert time.monotonic() < deadline, server.log_tail()
                time.sleep(1)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def page() -> Iterator[Page]:
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        context = browser.new_context(viewport={"width": 1600, "height": 1000})
        try:
            yield context.new_page()
        finally:
            browser.close()


def dismiss_welcome(page: Page) -> None:
    """A fresh DAGSTER_HOME greets a first visit with a newsletter dialog; skip it."""
    skip = page.get_by_role("button", name="Skip")
    try:
        skip.wait_for(timeout=5_000)
    except PlaywrightTimeoutError:
        return
    skip.click()


def test_the_asset_graph_shows_the_pipeline(dev: DagsterDev, page: Page) -> None:
    page.goto(f"{dev.url}/asset-groups/factflow_news", wait_until="networkidle")
    dismiss_welcome(page)
    nodes = page.locator("foreignObject")  # the graph draws each asset node in one
    for stage in ("fetch", "parse", "annotate", "index"):
        nodes.filter(has_text=stage).first.wait_for(timeout=30_000)
    assert nodes.count() == 4
    nodes.filter(has_text="Latest event").first.wait_for(timeout=30_000)
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(ARTIFACTS / "asset-graph.png"), full_page=True)


def test_a_replayed_partition_shows_its_provenance(dev: DagsterDev, scene, page: Page) -> None:
    world, child = scene
    url = f"{dev.url}/assets/factflow/news/enrich/annotate?view=partitions&partition={child}"
    page.goto(url, wait_until="networkidle")
    dismiss_welcome(page)
    page.get_by_text(f"{world.parent.id} ingest/parse").first.wait_for(timeout=30_000)
    page.get_by_text("replayed_from").first.wait_for(timeout=10_000)
    link = f"/assets/factflow/news/ingest/parse?partition={world.parent.id}"
    page.get_by_text(link).first.wait_for(timeout=10_000)
    page.screenshot(path=str(ARTIFACTS / "replayed-partition.png"), full_page=True)
