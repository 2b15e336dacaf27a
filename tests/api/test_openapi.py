"""schemathesis against the app's own OpenAPI document: generated requests to every operation
find no server error and no response that breaks the document (embedded settings, an empty
history: every request is answered without starting a run)."""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from support.api import AUTH, TOKENS

from factflow_replay_dagster.api import create_app
from factflow_replay_dagster.settings import Settings


class _NoRuns:
    """A Dagster seam that fails any submission: nothing here may start a run."""

    target = "no Dagster (schemathesis)"

    def submit(self, *args: object) -> str:
        raise AssertionError("schemathesis started a run")

    def run(self, run_id: str) -> None:
        return None

    def find_run(self, *args: object) -> None:
        return None

    def cancel(self, run_id: str) -> None:
        raise AssertionError("nothing to cancel")

    def check(self) -> None:
        return None

    def close(self) -> None:
        return None


AUTH_FIRST = {"Authorization": f"Bearer {TOKENS[0]}"}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.mark.timeout(120)
def test_no_server_error_and_every_response_matches_the_document(tmp_path: Path) -> None:
    """Every operation, 25 generated requests each (derandomized: the same every run, about
    20 s in all); schemathesis' own pytest integration does not run under pytest 9, so its
    Python API is driven here with Hypothesis, as that integration does."""
    app = create_app(
        Settings.from_env({"FACTFLOW_HOME": str(tmp_path), "FACTFLOW_API_TOKENS": TOKENS[0]}),
        launcher=_NoRuns(),  # type: ignore[arg-type]
    )
    api = schemathesis.openapi.from_asgi("/openapi.json", app, headers=AUTH_FIRST)
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) >= 11
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=25,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def check(case: schemathesis.Case) -> None:
            case.call_and_validate(headers=AUTH_FIRST, checks=CHECKS)

        check()


def test_the_document_describes_the_bodies_with_the_core_models() -> None:
    from factflow_replay_dagster.recovery import RecoveryOptions, RerunRequest
    from factflow_replay_dagster.replay import ReplayOptions

    document = create_app(Settings.from_env({"FACTFLOW_API_TOKENS": TOKENS[1]})).openapi()
    bodies = {
        (path, method): op["requestBody"]["content"]["application/json"]["schema"]
        for path, ops in document["paths"].items()
        for method, op in ops.items()
        if "requestBody" in op
    }
    assert bodies[("/api/v1/executions/{execution_id}/replay", "post")] == {
        "$ref": "#/components/schemas/ReplayOptions"
    }
    assert bodies[("/api/v1/replay", "post")] == {"$ref": "#/components/schemas/RerunRequest"}
    schemas = document["components"]["schemas"]
    for model in (ReplayOptions, RerunRequest, RecoveryOptions):
        assert set(schemas[model.__name__]["properties"]) == set(model.model_fields)
        for name, field in model.model_fields.items():
            assert schemas[model.__name__]["properties"][name]["description"] == field.description
    assert document["paths"]["/healthz"]["get"]["security"] == []
    assert document["paths"]["/api/v1/executions"]["get"]["security"] == [{"bearer": []}]
    assert AUTH["Authorization"].startswith("Bearer ")
