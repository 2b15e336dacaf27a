"""Replay stored factflow artefacts into queues and recover failed executions."""
