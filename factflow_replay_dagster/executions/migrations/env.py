"""Alembic environment: migrations run on the engine the store hands over (no alembic.ini)."""

from __future__ import annotations

from alembic import context

from factflow_replay_dagster.executions.models import Base

engine = context.config.attributes["engine"]
with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    context.run_migrations()
