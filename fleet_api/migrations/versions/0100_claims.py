"""Claims of pre-registered devices (fleet_api/devices/claims.py).

Revision ID: 0100
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0100"
down_revision = "0004"


def upgrade() -> None:
    op.create_table(
        "claims",
        sa.Column("claim_code", sa.String(32), primary_key=True),
        sa.Column("device_id", sa.String(63), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("claimed_at", sa.DateTime, nullable=True),
        sa.Column("claimed_via", sa.String(16), nullable=True),
        sa.Column("site", sa.String(200), nullable=True),
        sa.Column("district", sa.String(100), nullable=True),
        sa.Column("lat", sa.Float, nullable=True),
        sa.Column("lon", sa.Float, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("claims")
