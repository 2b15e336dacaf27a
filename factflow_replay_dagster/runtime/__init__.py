"""The reference pipeline runtime: workers that honour the factflow message contract."""

from __future__ import annotations

from .runner import declare_queues, run_pipeline, run_until_finished, start_execution
from .stages import Input, Output, StageContext, StageFunction, resolve_stage
from .worker import Worker

__all__ = [
    "Input",
    "Output",
    "StageContext",
    "StageFunction",
    "Worker",
    "declare_queues",
    "resolve_stage",
    "run_pipeline",
    "run_until_finished",
    "start_execution",
]
