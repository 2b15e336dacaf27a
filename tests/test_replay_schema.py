"""The replay request is defined once: the Dagster run config and the CLI options are its fields,
with its defaults and help texts."""

from __future__ import annotations

import click

from factflow_replay_dagster.cli.replay import replay
from factflow_replay_dagster.defs.jobs import ReplayConfig
from factflow_replay_dagster.replay import RESUME_DESCRIPTION, ReplayRequest


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
