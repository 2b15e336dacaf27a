"""``ReplayConfig``: the run config of ``replay_job``, the core request's fields and a resume."""

# No `from __future__ import annotations` here: Dagster reads the field annotations at runtime.

__all__ = ["ReplayConfig"]

from typing import Any

import dagster as dg
from pydantic import Field

from ...replay import RESUME_DESCRIPTION, ReplayRequest, new_replay_id
from ._common import config_field, requested_by


def _request_field(name: str) -> Any:
    """A run-config field with the default and help text of ``ReplayRequest.<name>``."""
    return config_field(ReplayRequest, name)


class ReplayConfig(dg.Config):
    """Run config of ``replay_job``: the fields of the core's ``ReplayRequest`` (the launchpad
    shows and validates every one; their texts come from the request), and a resume."""

    source_execution_id: str = _request_field("source_execution_id")
    from_stage: str = _request_field("from_stage")
    to_route: str = _request_field("to_route")
    source_route: str | None = _request_field("source_route")
    match: str | None = _request_field("match")
    limit: int | None = _request_field("limit")
    rate: float | None = _request_field("rate")
    dry_run: bool = _request_field("dry_run")
    reason: str | None = _request_field("reason")
    child_execution_id: str | None = _request_field("child_execution_id")
    replay_id: str | None = _request_field("replay_id")
    shards: int = _request_field("shards")
    resume_replay_id: str | None = Field(default=None, description=RESUME_DESCRIPTION)

    def to_request(self, context: dg.OpExecutionContext) -> ReplayRequest:
        """The core request; bad ids raise the package's typed errors.

        Without an explicit ``replay_id`` the replay is named after the run's root run, which a
        run and all its retries (``dagster/max_retries``) share: a retry resumes the replay its
        first run started instead of sending everything again.
        """
        fields = self.model_dump(exclude={"resume_replay_id"})
        root = context.run.tags.get("dagster/root_run_id", context.run_id)
        fields["replay_id"] = self.replay_id or new_replay_id(root)
        fields["requested_by"] = requested_by(context)
        fields["dagster_run_id"] = context.run_id
        return ReplayRequest.parse(fields)
