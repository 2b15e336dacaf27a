"""Property-based bad input: ids, storage keys, replay run config, the CLI and snapshot YAML.

Every input either works or is refused with the package's typed error (exit code 2, or 3
for a selection that matches nothing, on the command line); nothing is published by a
refused input, no library raises its own exception, and nothing outside
``executions/<parent>/`` of the artefact store is opened. The CLI and run-config examples
run for real on embedded defaults against a stored parent execution.
"""

from __future__ import annotations

import contextlib
import json
import os
import unicodedata
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml
from click.testing import CliRunner
from hypothesis import example, given
from hypothesis import strategies as st
from support.faults import figure
from support.hostile import (
    hostile_ids,
    hostile_text,
    opened_files,
    profile,
)
from support.snapshots import SNAPSHOT
from support.worlds import World, small_news

from factflow_replay_dagster.cli import cli
from factflow_replay_dagster.connect import connect
from factflow_replay_dagster.defs import build_job_definitions
from factflow_replay_dagster.defs.discovery import discover
from factflow_replay_dagster.errors import (
    ExecutionStoreError,
    FactflowReplayError,
    InvalidIdError,
    InvalidInputError,
    NoArtefactsError,
    SnapshotError,
)
from factflow_replay_dagster.executions import ExecutionStatus, ExecutionStore
from factflow_replay_dagster.ids import ID_MAX_LENGTH, ID_PATTERN, validate_id
from factflow_replay_dagster.layout import ROOT, artefact_key, stage_prefix
from factflow_replay_dagster.queues.embedded import EmbeddedQueue
from factflow_replay_dagster.replay import ReplayRequest
from factflow_replay_dagster.runtime import run_pipeline
from factflow_replay_dagster.settings import Settings
from factflow_replay_dagster.snapshot import ConfigSnapshot
from factflow_replay_dagster.storage.base import check_key
from factflow_replay_dagster.storage.local import LocalArtefactStore

KINDS = ["execution", "route", "stage", "pipeline", "replay", "object", "queue"]
LIMITS = {"object": 255, "queue": 255}
#: A sibling execution's object: traversal out of the parent's folder would reach it.
CANARY_KEY = f"{ROOT}/canary-exec/ingest/parse/canary.json"


def report(name: str, counts: Counter[str]) -> None:
    figure(
        name,
        inputs_tried=counts["tried"],
        **{k.replace(" ", "_"): v for k, v in sorted(counts.items()) if k != "tried"},
    )


# -- ids and keys (pure) -------------------------------------------------------------------


def test_validate_id_accepts_only_plain_ascii_ids() -> None:
    counts: Counter[str] = Counter()

    @profile(max_examples=3000)
    @given(kind=st.sampled_from(KINDS), value=st.one_of(hostile_text(), st.text()))
    def check(kind: str, value: str) -> None:
        counts["tried"] += 1
        try:
            validate_id(value, kind=kind)  # type: ignore[arg-type]
        except InvalidIdError as exc:
            counts["refused"] += 1
            refused = exc
        else:
            refused = None
        if refused is not None:
            assert refused.kind == kind
            return
        counts["accepted"] += 1
        assert ID_PATTERN.fullmatch(value)
        assert value.isascii()
        assert unicodedata.normalize("NFKC", value) == value
        assert ".." not in value
        assert "/" not in value
        assert "\\" not in value
        assert len(value) <= LIMITS.get(kind, ID_MAX_LENGTH)

    @profile(max_examples=200)
    @given(value=st.one_of(st.none(), st.integers(), st.binary(), st.lists(st.text(max_size=3))))
    def not_a_string(value: object) -> None:
        counts["tried"] += 1
        with pytest.raises(InvalidIdError, match="must be a string"):
            validate_id(value, kind="execution")
        counts["refused"] += 1

    check()
    not_a_string()
    report("ids (validate_id)", counts)
    assert counts["accepted"] > 0
    assert counts["refused"] > 0


def test_a_key_built_by_layout_stays_in_its_execution(tmp_path: Path) -> None:
    counts: Counter[str] = Counter()
    store = LocalArtefactStore(tmp_path)

    @profile(max_examples=1500)
    @given(
        execution=hostile_ids("e1", "news-20261123T101500-3f9a1c2b"),
        route=hostile_ids("ingest"),
        stage=hostile_ids("parse"),
        name=hostile_ids("news-0001.json", "a" * 255),
    )
    def check(execution: str, route: str, stage: str, name: str) -> None:
        counts["tried"] += 1
        try:
            key = artefact_key(execution, route, stage, name)
        except InvalidIdError:
            counts["refused"] += 1
            return
        counts["accepted"] += 1
        assert key.startswith(stage_prefix(execution, route, stage))
        assert key.split("/") == [ROOT, execution, route, stage, name]
        check_key(key)
        assert store._path(key).resolve().is_relative_to(store.root / ROOT / execution)

    check()
    report("layout keys", counts)
    assert counts["accepted"] > 0
    assert counts["refused"] > 0


def test_the_folder_store_refuses_keys_that_leave_its_root(tmp_path: Path) -> None:
    """Keys are not only built by layout: a listing returns what another deployment stored."""
    counts: Counter[str] = Counter()
    store = LocalArtefactStore(tmp_path)

    @profile(max_examples=1500)
    @given(key=st.lists(hostile_text(max_pieces=3), min_size=1, max_size=5).map("/".join))
    def check(key: str) -> None:
        counts["tried"] += 1
        try:
            path = store._path(key)
        except InvalidIdError:
            counts["refused"] += 1
            return
        counts["accepted"] += 1
        assert path.resolve().is_relative_to(store.root)
        assert not any(part in ("", ".", "..") for part in key.split("/"))

    check()
    report("store keys", counts)
    assert counts["accepted"] > 0
    assert counts["refused"] > 0


# -- snapshots (pure) ------------------------------------------------------------------------

#: YAML syntax in pieces: anchors, aliases, merge keys, tags (python ones too), flow and
#: block collections, documents, quoting, escapes and characters YAML refuses.
YAML_PIECES = [
    "&a ",
    "*a",
    "&b [*a, *a]",
    "<<: *a\n",
    "!!python/object/apply:os.system ['true']",
    "!!python/name:os.system",
    "!!binary aGVsbG8=",
    "!!set {a, b}",
    "!!timestamp 2020-01-01",
    "!!float .nan",
    "? ",
    "- ",
    ": ",
    "{",
    "}",
    "[",
    "]",
    ", ",
    "\n",
    "  ",
    "\t",
    "|\n  ",
    ">\n  ",
    "%YAML 1.1\n",
    "---\n",
    "...\n",
    "'",
    '"',
    "\\x00",
    "\x00",
    "\ufeff",
    "\udc80",
    "#",
    "pipeline: ",
    "routes: ",
    "stages: ",
    "name: ",
    "queue: ",
    "version: ",
]
JSONISH = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=10)),
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


def _mutated(base: Any, path: list[int], value: Any, delete: bool) -> Any:
    """``base`` with the node at ``path`` (indexes into keys/items) replaced or deleted."""
    if not path or not isinstance(base, (dict, list)) or not base:
        return value
    keys = list(base) if isinstance(base, dict) else list(range(len(base)))
    key = keys[path[0] % len(keys)]
    copy: Any = dict(base) if isinstance(base, dict) else list(base)
    if delete and len(path) == 1:
        del copy[key]
    else:
        copy[key] = _mutated(copy[key], path[1:], value, delete)
    return copy


def _check_snapshot(text: str, counts: Counter[str]) -> None:
    counts["tried"] += 1
    try:
        snapshot = ConfigSnapshot.parse(text, source="generated")
    except SnapshotError as exc:
        counts["refused"] += 1
        message = str(exc)
    else:
        message = None
    if message is not None:
        assert message.startswith("generated"), message
        return
    counts["accepted"] += 1
    for queue in snapshot.config.queues():
        validate_id(queue, kind="queue")
    for route, stage in snapshot.config.iter_stages():
        assert snapshot.resolve_stage("e1", stage.name, route=route.name) == route.name


def test_snapshot_yaml_loads_or_is_a_snapshot_error(tmp_path: Path) -> None:
    counts: Counter[str] = Counter()

    @profile(max_examples=600)
    @given(
        text=st.one_of(st.text(max_size=300), st.lists(st.sampled_from(YAML_PIECES)).map("".join))
    )
    def any_text(text: str) -> None:
        _check_snapshot(text, counts)

    @profile(max_examples=600)
    @given(
        path=st.lists(st.integers(min_value=0, max_value=7), min_size=1, max_size=6),
        value=st.one_of(JSONISH, hostile_text()),
        delete=st.booleans(),
    )
    def mutated_config(path: list[int], value: Any, delete: bool) -> None:
        base = yaml.safe_load(SNAPSHOT)
        text = yaml.safe_dump(_mutated(base, path, value, delete), allow_unicode=True)
        _check_snapshot(text, counts)

    @profile(max_examples=200)
    @given(data=st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode)))
    def config_file(data: bytes) -> None:
        path = tmp_path / "generated.yaml"
        path.write_bytes(SNAPSHOT.encode() + data)
        counts["tried"] += 1
        try:
            ConfigSnapshot.load(path)
        except SnapshotError:
            counts["refused"] += 1
        else:
            counts["accepted"] += 1

    any_text()
    mutated_config()
    config_file()
    report("snapshot YAML", counts)
    assert counts["accepted"] > 0
    assert counts["refused"] > 0


# -- a stored parent on embedded defaults ------------------------------------------------------


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A ``news`` execution of 10 documents on embedded defaults, a sibling execution's
    object and a file beside the store as canaries."""
    home = tmp_path_factory.mktemp("hostile-home")
    env = {"FACTFLOW_HOME": str(home)}
    news = small_news(10)
    with connect(Settings.from_env(env)) as components:
        parent = run_pipeline(news, **components.runtime(), timeout=180)
        assert parent.status is ExecutionStatus.SUCCEEDED, parent.error
        components.artefacts.write(CANARY_KEY, b'{"canary": true}')
        (home / "canary.txt").write_text("canary")
        yield World(env, components, news, parent)


def artefacts_root(world: World) -> Path:
    store = world.components.artefacts
    assert isinstance(store, LocalArtefactStore)
    return store.root


@pytest.fixture
def queue(world: World) -> EmbeddedQueue:
    return world.emptied_queue()


def depth(world: World) -> int:
    queue = world.components.publisher
    assert isinstance(queue, EmbeddedQueue)
    return sum(queue.depth(name) for name in world.news.config.queues())


@contextlib.contextmanager
def confined(world: World) -> Iterator[None]:
    """Fail if anything under the artefact store outside ``executions/<parent>/``, or under
    the home through a ``..``, is opened inside the block."""
    recorder = opened_files()
    root = artefacts_root(world)
    home = Path(world.env["FACTFLOW_HOME"])
    with recorder.recording() as paths:
        yield
    wrong = recorder.outside(root, root / ROOT / world.parent.id)
    escaped = [p for p in paths if p.startswith(str(home)) and ".." in Path(p).parts]
    assert not wrong + escaped, f"opened outside the parent's folder: {wrong + escaped}"


# -- replay run config (Dagster's config system, then the job itself) --------------------------

ANY_VALUE = st.one_of(st.integers(), st.floats(), st.lists(st.integers(), max_size=2), JSONISH)


def mostly(right: st.SearchStrategy[Any], wrong: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``right`` nine times in ten, ``wrong`` (another type, say) otherwise."""
    return st.sampled_from(range(10)).flatmap(lambda n: wrong if n == 9 else right)


OPTIONAL_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "source_route": mostly(hostile_ids("ingest", "enrich"), ANY_VALUE),
    "match": mostly(st.sampled_from(["news-000*.json", "*", "news-[0", "x*"]), hostile_text()),
    "limit": mostly(st.integers(min_value=-3, max_value=10**20), st.booleans() | st.text()),
    "rate": mostly(st.sampled_from([0, -1.0, float("nan"), float("inf"), 1e6]), st.text()),
    "dry_run": mostly(st.booleans(), st.text(max_size=3)),
    "reason": mostly(st.text(max_size=2100) | hostile_text(), ANY_VALUE),
    "child_execution_id": mostly(hostile_ids(), ANY_VALUE),
    "replay_id": mostly(hostile_ids(), ANY_VALUE),
    # More than one shard publishes from processes of their own (test_sharded_replay.py).
    "shards": st.sampled_from([0, 1, 65, -1, "2", None]),
    "resume_replay_id": mostly(hostile_ids(), ANY_VALUE),
}


def run_configs(parent: str) -> st.SearchStrategy[dict[str, Any]]:
    """Run configs of replay_job: the required fields mostly strings (often the real ones),
    up to three optional fields, sometimes an unknown field or a required one missing."""
    required = st.fixed_dictionaries(
        {
            "source_execution_id": mostly(hostile_ids(parent), ANY_VALUE),
            "from_stage": mostly(hostile_ids("parse", "fetch"), ANY_VALUE),
            "to_route": mostly(hostile_ids("enrich", "ingest"), ANY_VALUE),
        }
    )
    optional = st.dictionaries(
        st.sampled_from(sorted(OPTIONAL_FIELDS)), st.just(None), max_size=3
    ).flatmap(
        lambda chosen: st.fixed_dictionaries({name: OPTIONAL_FIELDS[name] for name in chosen})
    )
    odd = mostly(st.just({}), st.sampled_from([{"unknown_field": "x"}, {"from_stage": None}]))
    return st.tuples(required, optional, odd).map(
        lambda p: {k: v for k, v in {**p[0], **p[1], **p[2]}.items() if v is not None}
    )


def package_error(error: BaseException) -> FactflowReplayError | None:
    """The package's error a run raised (every op raises ``dagster.Failure`` from it)."""
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, FactflowReplayError):
            return cause
        cause = cause.__cause__
    return None


def test_replay_run_config_runs_or_is_refused_with_a_typed_error(
    world: World, queue: EmbeddedQueue
) -> None:
    counts: Counter[str] = Counter()
    job = build_job_definitions(
        Settings.from_env(world.env), console_level="CRITICAL"
    ).resolve_job_def("replay_job")

    good = {"source_execution_id": world.parent.id, "from_stage": "parse", "to_route": "enrich"}

    @profile(max_examples=80)
    @example(config={**good, "replay_id": "r" * 128, "limit": 2})  # ids longer than a tag
    @example(config={**good, "from_stage": "../../canary-exec/ingest/parse"})
    @example(config={**good, "source_route": "..", "dry_run": True})
    @given(config=run_configs(world.parent.id))
    def check(config: dict[str, Any]) -> None:
        counts["tried"] += 1
        world.emptied_queue()
        try:
            dg.validate_run_config(job, config)
        except dg.DagsterInvalidConfigError:
            counts["refused by Dagster's config"] += 1
            return
        replays = len(world.components.executions.list_replays())
        with dg.DagsterInstance.ephemeral() as instance, confined(world):
            try:
                job.execute_in_process(run_config=config, instance=instance, raise_on_error=True)
            except (Exception, dg.DagsterExecutionInterruptedError) as exc:
                error = package_error(exc)
                if error is None:
                    raise  # not the package's typed error: the traceback says whose
                counts[f"refused: {type(error).__name__}"] += 1
                assert isinstance(error, (InvalidInputError, NoArtefactsError)), error
                assert depth(world) == 0, f"{config!r} was refused but published"
                assert len(world.components.executions.list_replays()) == replays
                return
        counts["ran"] += 1
        if config.get("dry_run") is not True:
            assert depth(world) > 0
        world.emptied_queue()

    check()
    report("replay run config", counts)
    assert counts["ran"] > 0
    assert counts["refused by Dagster's config"] > 0


# -- the command line ------------------------------------------------------------------------

CLI_OPTIONS: dict[str, st.SearchStrategy[str]] = {
    "--source-route": hostile_ids("ingest", "enrich"),
    "--match": st.one_of(st.sampled_from(["news-000*.json", "*", "news-[0"]), hostile_text()),
    "--limit": st.one_of(st.integers(min_value=-3, max_value=10**30).map(str), hostile_text()),
    # Slow rates are valid and would only make the example slow: the refused ones and fast.
    "--rate": st.sampled_from(["0", "-1", "nan", "inf", "-inf", "1e309", "abc", "", "1e6"]),
    "--reason": st.one_of(st.text(max_size=2100), hostile_text()),
    "--child-execution-id": hostile_ids(),
    "--replay-id": hostile_ids(),
    # Valid shard counts above 1 start processes (tests/e2e/test_sharded_replay.py).
    "--shards": st.sampled_from(["0", "1", "65", "-1", "x", ""]),
    "--resume": hostile_ids(),
    "--dagster-url": st.sampled_from(["ftp://x", "localhost:3000", "http://", ""]),
    "--location": hostile_text(),
}


def cli_args(parent: str) -> st.SearchStrategy[list[str]]:
    """``EXECUTION --from-stage S --to-route R`` (each mostly real, each may be missing),
    up to three options with hostile or valid values, and flags."""
    execution = mostly(st.just(parent), hostile_text())
    stage = mostly(st.sampled_from(["parse", "fetch", "annotate"]), st.none() | hostile_text())
    route = mostly(st.sampled_from(["enrich", "ingest"]), st.none() | hostile_text())
    head = st.tuples(execution, stage, route).map(
        lambda t: [
            t[0],
            *(["--from-stage", t[1]] if t[1] is not None else []),
            *(["--to-route", t[2]] if t[2] is not None else []),
        ]
    )
    options = st.lists(
        st.sampled_from(sorted(CLI_OPTIONS)).flatmap(
            lambda name: CLI_OPTIONS[name].map(lambda value: [name, value])
        ),
        max_size=3,
    ).map(lambda pairs: [part for pair in pairs for part in pair])
    flags = st.lists(st.sampled_from(["--dry-run", "--json"]), max_size=2, unique=True)
    return st.tuples(head, options, flags).map(lambda p: p[0] + p[1] + p[2])


@pytest.fixture
def cli_env(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in world.env.items():
        monkeypatch.setenv(name, value)
    for name in ("DAGSTER_HOME", "FACTFLOW_DAGSTER_URL"):
        monkeypatch.delenv(name, raising=False)


def test_cli_replay_works_or_exits_2_with_the_packages_error(
    world: World, queue: EmbeddedQueue, cli_env: None
) -> None:
    counts: Counter[str] = Counter()

    parent = world.parent.id
    good = [parent, "--from-stage", "parse", "--to-route", "enrich"]

    @profile(max_examples=80)
    @example(args=[*good, "--replay-id", "r" * 128, "--limit", "2"])  # ids longer than a tag
    @example(args=[*good, "--child-execution-id", "c" * 128, "--limit", "2"])
    @example(args=[*good, "--reason", "why\x00", "--limit", "1"])
    @example(args=[parent, "--from-stage", "../../canary-exec/ingest/parse", "--to-route", "x"])
    @example(args=[parent, "--from-stage", "%2e%2e", "--to-route", "enrich"])
    @example(args=[parent, "--from-stage", "p\u0430rse", "--to-route", "enrich"])
    @example(args=["..", "--from-stage", "parse", "--to-route", "enrich"])
    @given(args=cli_args(parent))
    def check(args: list[str]) -> None:
        counts["tried"] += 1
        world.emptied_queue()
        replays = len(world.components.executions.list_replays())
        with confined(world):
            result = CliRunner().invoke(cli, ["execution", "replay", *args], catch_exceptions=False)
        output = result.stdout + result.stderr
        assert "Traceback" not in output, output
        if result.exit_code == 0:
            counts["ran"] += 1
            if "--dry-run" not in args:
                assert depth(world) > 0
            world.emptied_queue()
            return
        assert depth(world) == 0, f"{args!r} was refused but published"
        assert len(world.components.executions.list_replays()) == replays
        if "Usage:" in result.stderr:  # click refused the arguments themselves (exit 2)
            counts["refused by click"] += 1
            assert result.exit_code == 2, output
            return
        if "--json" in args and result.stdout.strip():  # a run failed: its summary says why
            summary = json.loads(result.stdout)
            assert summary["exit_code"] == result.exit_code, output
            error = summary["error"]
        else:  # refused before a run, or the CLI's last word after Dagster's console log
            error = result.stderr.rstrip().splitlines()[-1]
            assert error.startswith("error: "), output
        if result.exit_code == 3:
            assert "no artefacts under" in error, output
            counts["exit 3 (nothing matches)"] += 1
        else:
            assert result.exit_code == 2, output
            counts["exit 2"] += 1

    check()
    report("CLI replay", counts)
    assert counts["ran"] > 0
    assert counts["exit 2"] > 0


def test_undecodable_argv_bytes_in_a_real_process_exit_2(world: World, tmp_path: Path) -> None:
    """argv bytes that are not UTF-8 reach Python as lone surrogates: a real process."""
    import subprocess
    import sys

    env = {**os.environ, **world.env, "PATH": str(Path(sys.executable).parent)}
    env.pop("DAGSTER_HOME", None)
    cases = [
        [world.parent.id.encode(), b"--from-stage", b"pa\xffrse", b"--to-route", b"enrich"],
        [
            world.parent.id.encode(),
            b"--from-stage",
            b"parse",
            b"--to-route",
            b"enrich",
            b"--reason",
            b"caf\xe9",
        ],
        [b"..\xc0\xaf..", b"--from-stage", b"parse", b"--to-route", b"enrich"],
    ]
    for argv in cases:
        done = subprocess.run(
            [
                sys.executable.encode(),
                b"-m",
                b"factflow_replay_dagster.cli",
                b"execution",
                b"replay",
                *argv,
            ],
            capture_output=True,
            env=env,
            cwd=tmp_path,
            check=False,
            timeout=120,
        )
        stderr = done.stderr.decode(errors="replace")
        assert done.returncode == 2, stderr
        assert "Traceback" not in stderr, stderr
        assert stderr.startswith("error: "), stderr
    assert depth(world) == 0
    figure("CLI undecodable argv", inputs_tried=len(cases), refused=len(cases))


# -- free text on PostgreSQL (what the execution store keeps) ----------------------------------


@pytest.fixture(scope="module")
def pg_world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    """``news`` (5 documents) with its execution store on PostgreSQL: text SQLite keeps,
    PostgreSQL may not (a NUL)."""
    postgres = request.getfixturevalue("postgres_server")
    env = {
        "FACTFLOW_HOME": str(tmp_path_factory.mktemp("hostile-pg")),
        "FACTFLOW_DATABASE_URL": postgres.create_database("factflow_hostile"),
    }
    news = small_news(5)
    with connect(Settings.from_env(env)) as components:
        parent = run_pipeline(news, **components.runtime(), timeout=180)
        assert parent.status is ExecutionStatus.SUCCEEDED, parent.error
        yield World(env, components, news, parent)


@pytest.mark.postgres
def test_free_text_of_a_replay_is_kept_or_refused_on_postgresql(pg_world: World) -> None:
    counts: Counter[str] = Counter()
    service = pg_world.service()
    texts = st.one_of(hostile_text(), st.text(max_size=40), st.just("a\x00b"))

    @profile(max_examples=40)
    @example(reason="why\x00", requested_by=None, match=None)
    @example(reason=None, requested_by="cli\x00", match=None)
    @given(
        reason=st.none() | texts,
        requested_by=st.none() | texts,
        match=st.none() | st.sampled_from(["news-*", "*\x00*", "news-000[1-3].json"]) | texts,
    )
    def check(reason: str | None, requested_by: str | None, match: str | None) -> None:
        counts["tried"] += 1
        fields = {"reason": reason, "requested_by": requested_by, "match": match, "limit": 2}
        pg_world.emptied_queue()
        try:
            request = ReplayRequest.parse(
                pg_world.good_request(**{k: v for k, v in fields.items() if v is not None})
            )
            result = service.run(request)
        except (InvalidInputError, NoArtefactsError) as exc:
            counts[f"refused: {type(exc).__name__}"] += 1
            assert depth(pg_world) == 0
            return
        counts["ran"] += 1
        child = pg_world.components.executions.get_execution(result.child_execution_id)
        assert child.replay_source is not None
        assert child.replay_source.reason == reason

    check()
    report("replay free text on PostgreSQL", counts)
    assert counts["ran"] > 0


def test_discovery_reports_an_execution_whose_id_is_longer_than_a_dagster_tag(
    tmp_path: Path,
) -> None:
    """Ids may have 128 characters, Dagster's asset event tags 63: the event leaves the tag
    out (its partition key names the execution) instead of failing the sensor's tick."""
    store = ExecutionStore(f"sqlite:///{tmp_path / 'executions.db'}")
    execution_id = "e" * 128
    store.create_execution(execution_id, ConfigSnapshot.parse(SNAPSHOT))
    store.record_stored_stage(
        execution_id, "ingest", "parse", count=1, size=2, first_key="k", last_key="k"
    )
    found = discover(store, None, registered=set(), location="folder x")
    [materialization] = found.events
    assert isinstance(materialization, dg.AssetMaterialization)
    assert materialization.partition == execution_id
    assert "factflow/execution" not in (materialization.tags or {})
    store.close()


@pytest.mark.postgres
def test_what_postgresql_cannot_keep_is_an_execution_store_error(pg_world: World) -> None:
    """Whatever an entry point let through, a value PostgreSQL refuses (a key longer than its
    1,024-character column, a NUL in a text column) is the package's error, not the driver's."""
    store = pg_world.components.executions
    store.create_execution("too-long-keys", ConfigSnapshot.parse(SNAPSHOT))
    with pytest.raises(ExecutionStoreError, match="refused a value: value too long"):
        store.record_stored_stage(
            "too-long-keys", "ingest", "parse", count=1, size=1, keys=["k" * 1100]
        )
    with pytest.raises(ExecutionStoreError, match=r"refused a value: .*NUL"):
        store.set_status("too-long-keys", ExecutionStatus.FAILED, error="nul\x00here")
