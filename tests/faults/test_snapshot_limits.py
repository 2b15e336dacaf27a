"""Hostile snapshots: a YAML bomb, a recursive alias, deep nesting and a 100 MB config are
refused with a SnapshotError in bounded memory, wherever a snapshot is read from: a file
(``execution register``, ``pipeline run``, ``FACTFLOW_PIPELINES``), the execution store, text.

The HTTP API takes no snapshot: its bodies are replay, rerun and recovery requests.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import update
from support.faults import figure
from support.snapshots import SNAPSHOT
from support.worlds import World, small_news

from factflow_replay_dagster._bounded_yaml import MAX_YAML_BYTES, MAX_YAML_DEPTH, MAX_YAML_NODES
from factflow_replay_dagster.cli import cli
from factflow_replay_dagster.connect import connect
from factflow_replay_dagster.defs.assets import load_registered_configs
from factflow_replay_dagster.errors import SnapshotError
from factflow_replay_dagster.executions.models import Execution
from factflow_replay_dagster.replay import ReplayRequest
from factflow_replay_dagster.runtime import run_pipeline
from factflow_replay_dagster.settings import Settings
from factflow_replay_dagster.snapshot import ConfigSnapshot

#: Generous: the refusals read at most 1 MiB of text and build nothing.
MEMORY_BOUND = 16 * 1024 * 1024


def billion_laughs(levels: int = 9) -> str:
    """A valid pipeline config whose stage options hold 9^levels strings through aliases."""
    lines = [
        SNAPSHOT.rstrip("\n"),
        "        options:",
        '          l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]',
    ]
    lines += [
        f"          l{n}: &l{n} [{', '.join([f'*l{n - 1}'] * 9)}]" for n in range(1, levels + 1)
    ]
    return "\n".join(lines) + "\n"


#: Each hostile text (built when asked: one is 100 MB) and what its refusal says.
HOSTILE: dict[str, tuple[Callable[[], str], str]] = {
    "billion laughs": (billion_laughs, "aliases are expanded"),
    "recursive alias": (
        lambda: SNAPSHOT.rstrip("\n") + "\n        options: &o {self: *o}\n",
        "recursive",
    ),
    "nested 100,000 deep": (
        lambda: "[" * 100_000 + "]" * 100_000,
        f"more than {MAX_YAML_DEPTH} levels",
    ),
    "nested mappings": (lambda: "a: " + "{b: " * 1000 + "1" + "}" * 1000, "levels deep"),
    "100 MB": (
        lambda: "description: " + "x" * (100 * 1024 * 1024) + "\n",
        "larger than 1,048,576 bytes",
    ),
    "malformed tag": (lambda: SNAPSHOT + "description: !!timestamp x\n", "cannot be built"),
}


def peak_memory(action: Callable[[], object]) -> tuple[int, BaseException | None]:
    """The peak of memory allocated while ``action`` runs, and what it raised."""
    tracemalloc.start()
    try:
        action()
    except SnapshotError as exc:
        error: BaseException | None = exc
    else:
        error = None
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return peak, error


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_text_is_refused_in_bounded_memory(name: str) -> None:
    make, says = HOSTILE[name]
    text = make()
    peak, error = peak_memory(lambda: ConfigSnapshot.parse(text, source="hostile.yaml"))
    assert isinstance(error, SnapshotError)
    assert says in str(error)
    assert str(error).startswith("hostile.yaml: ")
    assert peak < MEMORY_BOUND, f"{peak:,} bytes"
    figure(f"snapshot {name}", input_bytes=len(text), refused=1, peak_bytes=peak)


@pytest.mark.parametrize("name", ["billion laughs", "100 MB"])
def test_a_hostile_file_is_refused_without_reading_it_all(tmp_path: Path, name: str) -> None:
    path = tmp_path / "pipeline.yaml"
    path.write_text(HOSTILE[name][0]())
    peak, error = peak_memory(lambda: ConfigSnapshot.load(path))
    assert isinstance(error, SnapshotError)
    assert str(error).startswith(str(path))
    assert peak < MEMORY_BOUND, f"{peak:,} bytes"
    figure(f"snapshot file {name}", file_bytes=path.stat().st_size, refused=1, peak_bytes=peak)


def test_an_endless_file_is_refused_after_one_mebibyte() -> None:
    peak, error = peak_memory(lambda: ConfigSnapshot.load("/dev/zero"))
    assert isinstance(error, SnapshotError)
    assert peak < MEMORY_BOUND, f"{peak:,} bytes"


def test_a_file_that_is_not_utf8_is_a_snapshot_error(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(SNAPSHOT.encode() + "description: caf\xe9\n".encode("latin-1"))
    with pytest.raises(SnapshotError, match="not UTF-8"):
        ConfigSnapshot.load(path)


def test_configs_within_the_limits_still_load() -> None:
    """1,000 routes (about 100 KB), anchors and aliases used as intended, nesting 40 deep."""
    routes = [
        "  - name: r0\n    queue: q0\n    forward_to: r1\n    stages:\n      - name: s\n"
        f"        options: &defaults {{retries: 3, deep: {'[' * 40}{']' * 40}}}"
    ]
    routes += [
        f"  - name: r{n}\n    queue: q{n}\n"
        + (f"    forward_to: r{n + 1}\n" if n < 999 else "")
        + "    stages:\n      - name: s\n        options: *defaults"
        for n in range(1, 1000)
    ]
    text = 'pipeline: big\nversion: "1"\nroutes:\n' + "\n".join(routes) + "\n"
    snapshot = ConfigSnapshot.parse(text, source="big")
    assert len(snapshot.config.routes) == 1000
    assert snapshot.config.routes[999].stages[0].options["retries"] == 3
    assert len(text.encode()) < MAX_YAML_BYTES


@pytest.mark.parametrize("shape", ["30,000 stages", "5,000 forwarding routes"])
def test_the_largest_configs_within_the_limits_load(shape: str) -> None:
    """Checking a config is linear in its size: before, 1,000 forwarding routes took 36 s and
    these (which fit in 1 MiB) would have taken hours."""
    if shape == "30,000 stages":
        stages = "".join(f"      - name: s{n}\n" for n in range(30_000))
        text = 'pipeline: wide\nversion: "1"\nroutes:\n  - name: r\n    queue: q\n    stages:\n'
        text += stages
    else:
        text = 'pipeline: long\nversion: "1"\nroutes:\n' + "".join(
            f"  - name: r{n}\n    queue: q{n}\n"
            + (f"    forward_to: r{n + 1}\n" if n < 4999 else "")
            + "    stages:\n      - name: s\n"
            for n in range(5000)
        )
    assert len(text.encode()) < MAX_YAML_BYTES
    snapshot = ConfigSnapshot.parse(text, source=shape)
    assert len(snapshot.config.queues()) in (30_000, 5000)
    figure(f"snapshot of {shape}", input_bytes=len(text), accepted=1)


def test_the_limits_are_what_protocol_md_says() -> None:
    protocol = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text()
    assert f"{MAX_YAML_BYTES // 1024 // 1024} MiB" in protocol
    assert f"{MAX_YAML_DEPTH} levels" in protocol
    assert f"{MAX_YAML_NODES:,} values" in protocol


# -- where snapshots come from ----------------------------------------------------------------


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    env = {"FACTFLOW_HOME": str(tmp_path_factory.mktemp("bomb-home"))}
    news = small_news(3)
    with connect(Settings.from_env(env)) as components:
        yield World(env, components, news, run_pipeline(news, **components.runtime()))


@pytest.fixture
def hostile_files(tmp_path: Path) -> dict[str, Path]:
    files = {}
    for name in ("billion laughs", "100 MB", "recursive alias"):
        path = tmp_path / f"{name.replace(' ', '-')}.yaml"
        path.write_text(HOSTILE[name][0]())
        files[name] = path
    return files


def test_the_cli_refuses_hostile_config_files_with_exit_2(
    world: World, hostile_files: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in world.env.items():
        monkeypatch.setenv(key, value)
    before = len(world.components.executions.list_executions())
    tried = 0
    for path in hostile_files.values():
        for args in (
            ["execution", "register", "--snapshot", str(path)],
            ["pipeline", "run", str(path)],
        ):
            result = CliRunner().invoke(cli, args, catch_exceptions=False)
            tried += 1
            assert result.exit_code == 2, result.output
            assert result.stderr.startswith(f"error: {path}: "), result.stderr
    assert len(world.components.executions.list_executions()) == before
    figure("CLI hostile config files", inputs_tried=tried, refused=tried)


def test_registered_pipelines_refuse_a_hostile_file(hostile_files: dict[str, Path]) -> None:
    for path in hostile_files.values():
        settings = Settings.from_env({"FACTFLOW_PIPELINES": str(path)})
        with pytest.raises(SnapshotError, match=str(path)):
            load_registered_configs(settings)


def test_a_hostile_snapshot_in_the_execution_store_refuses_the_replay(world: World) -> None:
    """An execution store written by something else (or an older version) holds a bomb."""
    store = world.components.executions
    with store._sessions.begin() as session:
        session.execute(
            update(Execution)
            .where(Execution.id == world.parent.id)
            .values(snapshot=billion_laughs())
        )
    peak, error = peak_memory(
        lambda: world.service().plan(ReplayRequest.parse(world.good_request()))
    )
    assert isinstance(error, SnapshotError)
    assert f"snapshot of {world.parent.id!r}" in str(error)
    assert peak < MEMORY_BOUND, f"{peak:,} bytes"
    assert world.emptied_queue().depth("news.enrich") == 0
