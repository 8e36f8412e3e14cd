"""Rollups of telemetry per minute and per hour, job marks, and an index on receive time
(rollups and alerts read what arrived since their last run).

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"


def _rollup(name: str) -> None:
    op.create_table(
        name,
        sa.Column("device_id", sa.String(63), primary_key=True),
        sa.Column("stream", sa.String(32), primary_key=True),
        sa.Column("metric", sa.String(64), primary_key=True),
        sa.Column("bucket", sa.DateTime, primary_key=True),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("sum", sa.Float, nullable=False),
        sa.Column("min", sa.Float, nullable=False),
        sa.Column("max", sa.Float, nullable=False),
    )
    op.create_index(f"{name}_metric", name, ["metric", "bucket"])


def upgrade() -> None:
    _rollup("rollup_1m")
    _rollup("rollup_1h")
    op.create_table(
        "marks",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("at", sa.DateTime, nullable=False),
    )
    op.create_index("records_received", "records", ["received_at"])


def downgrade() -> None:
    op.drop_index("records_received", "records")
    op.drop_table("marks")
    for name in ("rollup_1h", "rollup_1m"):
        op.drop_index(f"{name}_metric", name)
        op.drop_table(name)
