"""Shared fixtures: the real servers come from the package's own pytest plugin."""

pytest_plugins = ["factflow_replay_dagster.testing.pytest_plugin"]
