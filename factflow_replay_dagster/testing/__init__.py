"""Helpers for testing code that uses factflow-replay-dagster, importable from a plain install.

``testing.dagster`` evaluates sensors as the Dagster daemon would; ``testing.history`` inserts
large execution histories for scale tests. The servers this project's own suite starts
(RabbitMQ, SeaweedFS, PostgreSQL) are dev-only and live in its ``tests/`` folder.
"""
