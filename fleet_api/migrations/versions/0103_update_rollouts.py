"""Staged rollouts of agent updates and their per-device targets.

Revision ID: 0103
Revises: 0102
"""

import sqlalchemy as sa
from alembic import op

revision = "0103"
down_revision = "0102"


def upgrade() -> None:
    op.create_table(
        "update_rollouts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("plan", sa.JSON, nullable=False),
        sa.Column("max_failure_ratio", sa.Float, nullable=False),
        sa.Column("settle_s", sa.Float, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "update_targets",
        sa.Column("rollout_id", sa.Integer, primary_key=True),
        sa.Column("device_id", sa.String(63), primary_key=True),
        sa.Column("wave", sa.Integer, nullable=False),
        sa.Column("command_id", sa.String(32), nullable=True),
        sa.Column("sent_at", sa.DateTime, nullable=True),
        sa.Column("outcome", sa.String(16), nullable=True),
        sa.Column("detail", sa.Text, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("update_targets")
    op.drop_table("update_rollouts")
