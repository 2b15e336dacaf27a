"""The tags a recovery run must carry when it is submitted, for a queued run coordinator.

``recovery_job`` is limited by kind in the production profile (``factflow/kind:
recovery``): after an outage many executions fail at once, and their recoveries should
restart them a few at a time rather than all against a broker that is still recovering.
"""

from __future__ import annotations

__all__ = ["recovery_launch_tags"]

from .. import run_tags
from ..ids import validate_id


def recovery_launch_tags(execution_id: str) -> dict[str, str]:
    """``factflow/kind: recovery`` and ``factflow/execution`` for a ``recovery_job`` run of
    ``execution_id`` (validated: a malformed id raises
    :class:`~factflow_replay_dagster.errors.InvalidIdError`)."""
    return {
        run_tags.KIND: "recovery",
        run_tags.EXECUTION: validate_id(execution_id, kind="execution"),
    }
