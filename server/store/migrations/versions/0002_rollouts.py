"""Rollouts: the state of a model version's rollout, one active rollout per model, its events.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

# Frozen here on purpose: a migration describes the schema as it was, not as `schema.py` is now.
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "rollouts",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("experiment", sa.String(128), nullable=False),
        sa.Column("plan", sa.Text(), nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("step_started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("previous_stable", sa.BigInteger(), nullable=True),
        sa.Column("previous_canary", sa.BigInteger(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False, server_default=""),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("active_model", sa.String(128), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_rollouts"),
        sa.UniqueConstraint("active_model", name="uq_rollouts_active_model"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_rollouts_model_id", "rollouts", ["model", "id"])
    op.create_table(
        "rollout_events",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("rollout_id", sa.BigInteger(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_rollout_events"),
        sa.ForeignKeyConstraint(
            ["rollout_id"],
            ["rollouts.id"],
            name="fk_rollout_events_rollout_id_rollouts",
            ondelete="CASCADE",
        ),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_rollout_events_rollout_id_id", "rollout_events", ["rollout_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_rollout_events_rollout_id_id", table_name="rollout_events")
    op.drop_table("rollout_events")
    op.drop_index("ix_rollouts_model_id", table_name="rollouts")
    op.drop_table("rollouts")
