"""The requests are defined once: the Dagster run configs, the CLI options and the HTTP API's
bodies are their fields, with their defaults and help texts."""

from __future__ import annotations

import click

from factflow_replay_dagster.cli.replay import replay
from factflow_replay_dagster.defs.jobs import RecoveryConfig, ReplayConfig, RerunConfig
from factflow_replay_dagster.recovery import RecoveryOptions, RerunRequest
from factflow_replay_dagster.replay import RESUME_DESCRIPTION, ReplayOptions, ReplayRequest


def test_the_run_config_is_the_request_plus_a_resume() -> None:
    fields = ReplayConfig.model_fields
    assert list(fields) == [*ReplayRequest.user_fields(), "resume_replay_id"]
    for name in ReplayRequest.user_fields():
        ours, theirs = fields[name], ReplayRequest.model_fields[name]
        assert ours.description == theirs.description, name
        assert ours.default == theirs.default, name
    assert fields["resume_replay_id"].description == RESUME_DESCRIPTION
    assert "requested_by" not in fields  # filled in by whoever runs the replay


def test_the_cli_options_are_the_request_fields_with_their_help() -> None:
    params = {p.name: p for p in replay.params}
    argument = params.pop("execution_id")
    assert isinstance(argument, click.Argument)
    for name in ReplayRequest.user_fields():
        if name == "source_execution_id":
            continue  # the command's argument
        option = params.pop(name)
        assert isinstance(option, click.Option)
        assert option.help == ReplayRequest.model_fields[name].description, name
        assert option.opts == [f"--{name.replace('_', '-')}"]
    assert params.pop("resume_replay_id").help == RESUME_DESCRIPTION  # type: ignore[attr-defined]
    assert set(params) == {"as_json", "dagster_url", "location"}  # how to run, not what


def test_the_http_body_is_the_request_without_the_source_execution() -> None:
    """``POST /api/v1/executions/{id}/replay`` takes ``ReplayOptions``: the request's own
    fields (the same objects, so the same help and defaults), the execution from the path."""
    assert list(ReplayOptions.model_fields) == ReplayRequest.user_fields()[1:]
    for name, field in ReplayOptions.model_fields.items():
        assert ReplayRequest.model_fields[name].description == field.description, name
        assert ReplayRequest.model_fields[name].default == field.default, name
    assert ReplayOptions.model_config.get("extra") == "forbid"
    request = ReplayRequest.of("exec-1", ReplayOptions(from_stage="parse", to_route="enrich"))
    assert (request.source_execution_id, request.options().to_route) == ("exec-1", "enrich")


def test_the_rerun_and_recovery_configs_are_the_core_requests() -> None:
    assert list(RerunConfig.model_fields) == list(RerunRequest.model_fields)
    for name, field in RerunRequest.model_fields.items():
        assert RerunConfig.model_fields[name].description == field.description, name
        assert RerunConfig.model_fields[name].default == field.default, name
    assert list(RecoveryConfig.model_fields) == ["execution_id", *RecoveryOptions.model_fields]
    for name, field in RecoveryOptions.model_fields.items():
        assert RecoveryConfig.model_fields[name].description == field.description, name
        assert RecoveryConfig.model_fields[name].default == field.default, name
