"""The execution store runs as the role ``docs/security.md`` gives it, which cannot change the
schema: once the owner migrated, a pipeline, a replay and a recovery run as that role; a
migration as it is refused with an error naming the database, without its password."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.servers.postgres import PostgresServer
from support.worlds import small_news

from factflow_replay_dagster.connect import Components, connect
from factflow_replay_dagster.errors import ExecutionStoreError
from factflow_replay_dagster.executions import ExecutionStatus, ExecutionStore
from factflow_replay_dagster.recovery import RecoveryManager
from factflow_replay_dagster.replay import DetachedReplayService, ReplayRequest
from factflow_replay_dagster.runtime import run_pipeline, run_until_finished
from factflow_replay_dagster.settings import Settings

pytestmark = [pytest.mark.postgres]

SECURITY_MD = Path(__file__).resolve().parents[2] / "docs" / "security.md"
DOCS = 40


def documented_grants(database: str, role: str, password: str) -> list[str]:
    """The SQL statements of docs/security.md's role block, for ``database`` and ``role``."""
    text = SECURITY_MD.read_text()
    block = text.split("<!-- database role: tests/executions/test_database_role.py -->", 1)[1]
    sql = block.split("```sql", 1)[1].split("```", 1)[0]
    lines = [line.split("--", 1)[0].strip() for line in sql.splitlines()]
    statements = [s.strip() for s in " ".join(lines).split(";") if s.strip()]
    renamed = []
    for statement in statements:
        named = re.sub(r"\bfactflow_app\b", role, statement)
        named = re.sub(r"\bDATABASE factflow\b", f'DATABASE "{database}"', named)
        renamed.append(named.replace("PASSWORD '...'", f"PASSWORD '{password}'"))
    return renamed


def role_on(postgres_server: PostgresServer, *, migrated_to: str = "head") -> str:
    """A database its owner migrated to ``migrated_to``, and the URL of the documented role."""
    database = f"factflow_role_{secrets.token_hex(3)}"
    owner = ExecutionStore(postgres_server.create_database(database), auto_migrate=False)
    try:
        owner.migrate(migrated_to)
    finally:
        owner.close()
    role, password = f"factflow_app_{secrets.token_hex(3)}", f"pw-{secrets.token_hex(8)}"
    for statement in documented_grants(database, role, password):
        postgres_server.psql(statement, database=database)
    return postgres_server.url(database, user=role, password=password)


@pytest.fixture
def app_url(postgres_server: PostgresServer) -> str:
    return role_on(postgres_server)


@pytest.fixture
def components(app_url: str, tmp_path: Path) -> Iterator[Components]:
    settings = Settings.from_env({"FACTFLOW_HOME": str(tmp_path), "FACTFLOW_DATABASE_URL": app_url})
    with connect(settings) as opened:
        yield opened


def test_a_pipeline_a_replay_and_a_recovery_run_as_the_documented_role(
    components: Components, monkeypatch: pytest.MonkeyPatch
) -> None:
    c, news = components, small_news(DOCS)
    parent = run_pipeline(news, **c.runtime(), timeout=120)
    assert parent.status is ExecutionStatus.SUCCEEDED

    service = DetachedReplayService(
        artefacts=c.artefacts, executions=c.executions, publisher=c.publisher
    )
    replayed = service.run(
        ReplayRequest.parse(
            {"source_execution_id": parent.id, "from_stage": "parse", "to_route": "enrich"}
        )
    )
    assert (replayed.state, replayed.confirmed) == ("SUCCEEDED", DOCS)
    child = run_until_finished(
        str(replayed.child_execution_id), news.config.queues(), **c.runtime(), timeout=120
    )
    assert child.status is ExecutionStatus.SUCCEEDED

    monkeypatch.setenv("FACTFLOW_FAIL_STAGES", "annotate")
    failed = run_pipeline(news, **c.runtime(), timeout=120)
    monkeypatch.delenv("FACTFLOW_FAIL_STAGES")
    assert failed.status is ExecutionStatus.FAILED
    for queue in news.config.queues():  # what the failed attempt left behind
        c.publisher.purge(queue)  # type: ignore[attr-defined]
    manager = RecoveryManager(artefacts=c.artefacts, executions=c.executions, publisher=c.publisher)
    manager.recover(failed.id, reason="as the least-privileged role")
    recovered = run_until_finished(failed.id, news.config.queues(), **c.runtime(), timeout=120)
    assert recovered.status is ExecutionStatus.SUCCEEDED


def test_the_documented_role_cannot_change_the_schema(postgres_server: PostgresServer) -> None:
    """A new version of the package on a schema its owner has not migrated yet: opening the
    store as the role tries the migration, and is refused, naming the database."""
    url = role_on(postgres_server, migrated_to="0003")
    password = url.split(":")[2].split("@", maxsplit=1)[0]
    with pytest.raises(ExecutionStoreError, match="permission denied") as caught:
        ExecutionStore(url)
    assert "cannot migrate execution store at" in str(caught.value)
    assert "factflow_role_" in str(caught.value)  # names the database
    assert password not in str(caught.value)
