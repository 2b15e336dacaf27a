"""Stage key range: the first and last object key each stage stored (asset metadata).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("stage_lineage") as batch:
        batch.add_column(sa.Column("first_key", sa.String(length=1024), nullable=True))
        batch.add_column(sa.Column("last_key", sa.String(length=1024), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("stage_lineage") as batch:
        batch.drop_column("last_key")
        batch.drop_column("first_key")
