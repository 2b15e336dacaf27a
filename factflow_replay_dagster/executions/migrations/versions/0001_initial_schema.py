"""Initial schema: executions, stage lineage, processed messages, replays, recoveries, events, counters.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "counters",
        sa.Column("execution_id", sa.String(length=128), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("execution_id", "name"),
    )
    op.create_table(
        "execution_events",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("execution_id", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=True),
        sa.Column("route", sa.String(length=128), nullable=True),
        sa.Column("stage", sa.String(length=128), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("data", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("seq"),
    )
    with op.batch_alter_table("execution_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_execution_events_execution_id"), ["execution_id"], unique=False
        )
        batch_op.create_index("ix_execution_events_kind_seq", ["kind", "seq"], unique=False)

    op.create_table(
        "executions",
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("pipeline", sa.String(length=128), nullable=False),
        sa.Column("pipeline_version", sa.String(length=64), nullable=False),
        sa.Column("snapshot", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("origin", sa.String(length=32), nullable=False),
        sa.Column("parent_id", sa.String(length=128), nullable=True),
        sa.Column("replay_source", sa.JSON(), nullable=True),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("failure_count", sa.Integer(), nullable=False),
        sa.Column("recovery_attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["parent_id"],
            ["executions.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("executions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_executions_parent_id"), ["parent_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_executions_pipeline"), ["pipeline"], unique=False)
        batch_op.create_index(batch_op.f("ix_executions_status"), ["status"], unique=False)

    op.create_table(
        "processed_messages",
        sa.Column("execution_id", sa.String(length=128), nullable=False),
        sa.Column("route", sa.String(length=128), nullable=False),
        sa.Column("stage", sa.String(length=128), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.String(length=255), nullable=False),
        sa.PrimaryKeyConstraint("execution_id", "route", "stage", "attempt", "message_id"),
    )
    op.create_table(
        "recoveries",
        sa.Column("execution_id", sa.String(length=128), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("failure_count", sa.Integer(), nullable=False),
        sa.Column("restart_route", sa.String(length=128), nullable=False),
        sa.Column("restart_stage", sa.String(length=128), nullable=False),
        sa.Column("init_message_id", sa.String(length=255), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("requested_by", sa.String(length=255), nullable=True),
        sa.Column("dagster_run_id", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["execution_id"],
            ["executions.id"],
        ),
        sa.PrimaryKeyConstraint("execution_id", "attempt"),
    )
    op.create_table(
        "replays",
        sa.Column("replay_id", sa.String(length=128), nullable=False),
        sa.Column("source_execution_id", sa.String(length=128), nullable=False),
        sa.Column("child_execution_id", sa.String(length=128), nullable=True),
        sa.Column("source_route", sa.String(length=128), nullable=False),
        sa.Column("from_stage", sa.String(length=128), nullable=False),
        sa.Column("to_route", sa.String(length=128), nullable=False),
        sa.Column("queue", sa.String(length=255), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("bytes_total", sa.BigInteger(), nullable=False),
        sa.Column("confirmed", sa.Integer(), nullable=False),
        sa.Column("bytes_confirmed", sa.BigInteger(), nullable=False),
        sa.Column("first_key", sa.String(length=1024), nullable=True),
        sa.Column("last_key", sa.String(length=1024), nullable=True),
        sa.Column("last_confirmed_key", sa.String(length=1024), nullable=True),
        sa.Column("request", sa.JSON(), nullable=False),
        sa.Column("dagster_run_id", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["source_execution_id"],
            ["executions.id"],
        ),
        sa.PrimaryKeyConstraint("replay_id"),
    )
    with op.batch_alter_table("replays", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_replays_child_execution_id"), ["child_execution_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_replays_source_execution_id"), ["source_execution_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_replays_state"), ["state"], unique=False)

    op.create_table(
        "stage_lineage",
        sa.Column("execution_id", sa.String(length=128), nullable=False),
        sa.Column("route", sa.String(length=128), nullable=False),
        sa.Column("stage", sa.String(length=128), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("inputs_expected", sa.Integer(), nullable=True),
        sa.Column("inputs_processed", sa.Integer(), nullable=False),
        sa.Column("artefact_count", sa.Integer(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("end_sent", sa.Boolean(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("note", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(
            ["execution_id"],
            ["executions.id"],
        ),
        sa.PrimaryKeyConstraint("execution_id", "route", "stage"),
    )


def downgrade() -> None:

    op.drop_table("stage_lineage")
    with op.batch_alter_table("replays", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_replays_state"))
        batch_op.drop_index(batch_op.f("ix_replays_source_execution_id"))
        batch_op.drop_index(batch_op.f("ix_replays_child_execution_id"))

    op.drop_table("replays")
    op.drop_table("recoveries")
    op.drop_table("processed_messages")
    with op.batch_alter_table("executions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_executions_status"))
        batch_op.drop_index(batch_op.f("ix_executions_pipeline"))
        batch_op.drop_index(batch_op.f("ix_executions_parent_id"))

    op.drop_table("executions")
    with op.batch_alter_table("execution_events", schema=None) as batch_op:
        batch_op.drop_index("ix_execution_events_kind_seq")
        batch_op.drop_index(batch_op.f("ix_execution_events_execution_id"))

    op.drop_table("execution_events")
    op.drop_table("counters")
