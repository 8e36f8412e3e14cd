"""Births kept a day for cloned-card detection; each box's agent version and a clone flag;
credential rotation's state (fleet_api/devices/rotation.py).

Revision ID: 0102
Revises: 0101
"""

import sqlalchemy as sa
from alembic import op

revision = "0102"
down_revision = "0101"


def upgrade() -> None:
    op.add_column("devices", sa.Column("agent_version", sa.String(64), nullable=True))
    op.add_column("devices", sa.Column("clone_suspected_at", sa.DateTime, nullable=True))
    op.add_column("devices", sa.Column("pending_password_hash", sa.String(200), nullable=True))
    op.add_column("devices", sa.Column("rotation_id", sa.String(32), nullable=True))
    op.add_column("devices", sa.Column("rotation_state", sa.String(16), nullable=True))
    op.add_column("devices", sa.Column("rotation_since", sa.DateTime, nullable=True))
    op.create_table(
        "births",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("device_id", sa.String(63), nullable=False),
        sa.Column("boot_id", sa.String(32), nullable=False),
        sa.Column("received_at", sa.DateTime, nullable=False),
    )
    op.create_index("births_device", "births", ["device_id", "received_at"])


def downgrade() -> None:
    op.drop_index("births_device", "births")
    op.drop_table("births")
    for column in ("rotation_since", "rotation_state", "rotation_id", "pending_password_hash",
                   "clone_suspected_at"):
        op.drop_column("devices", column)
    op.drop_column("devices", "agent_version")
