"""Shared fixtures: the real servers (support.servers) for the whole session."""

pytest_plugins = ["support.servers.fixtures"]
