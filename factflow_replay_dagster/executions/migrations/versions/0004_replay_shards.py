"""Replay shards: a replay's key ranges, each with its own progress, published in parallel.

Every existing replay becomes one shard covering all of it, with its saved position.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "replay_shards",
        sa.Column("replay_id", sa.String(length=128), nullable=False),
        sa.Column("shard", sa.Integer(), nullable=False),
        sa.Column("start_after", sa.String(length=1024), nullable=True),
        sa.Column("stop_at", sa.String(length=1024), nullable=False),
        sa.Column("first_key", sa.String(length=1024), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("bytes_total", sa.BigInteger(), nullable=False),
        sa.Column("confirmed", sa.Integer(), nullable=False),
        sa.Column("bytes_confirmed", sa.BigInteger(), nullable=False),
        sa.Column("last_confirmed_key", sa.String(length=1024), nullable=True),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["replay_id"], ["replays.replay_id"]),
        sa.PrimaryKeyConstraint("replay_id", "shard"),
    )
    op.execute(
        "INSERT INTO replay_shards (replay_id, shard, start_after, stop_at, first_key, total,"
        " bytes_total, confirmed, bytes_confirmed, last_confirmed_key, state, updated_at,"
        " error) SELECT replay_id, 0, NULL, last_key, first_key, total, bytes_total, confirmed,"
        " bytes_confirmed, last_confirmed_key, state, updated_at, error FROM replays"
        " WHERE first_key IS NOT NULL AND last_key IS NOT NULL"
    )


def downgrade() -> None:
    op.drop_table("replay_shards")
