"""Stage manifests (the keys each stage stored) and replay heartbeats (who publishes, alive when).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "stage_objects",
        sa.Column("execution_id", sa.String(length=128), nullable=False),
        sa.Column("route", sa.String(length=128), nullable=False),
        sa.Column("stage", sa.String(length=128), nullable=False),
        sa.Column("key", sa.String(length=1024), nullable=False),
        sa.PrimaryKeyConstraint("execution_id", "route", "stage", "key"),
    )
    with op.batch_alter_table("stage_lineage") as batch:
        batch.add_column(
            sa.Column("manifest", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table("replays") as batch:
        batch.add_column(sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("owner", sa.String(length=255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("replays") as batch:
        batch.drop_column("owner")
        batch.drop_column("heartbeat_at")
    with op.batch_alter_table("stage_lineage") as batch:
        batch.drop_column("manifest")
    op.drop_table("stage_objects")
