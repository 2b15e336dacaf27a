"""Helpers for testing code that uses factflow-replay-dagster: real servers, consumers, fixtures.

Use the pytest fixtures with ``pytest_plugins = ["factflow_replay_dagster.testing.pytest_plugin"]``.
"""
