"""Shared fixtures: the real servers (support.servers) for the whole session, and the
summary of the figures fault tests report (support.figures)."""

pytest_plugins = ["support.servers.fixtures", "support.figures"]
