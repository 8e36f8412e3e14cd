"""Each box's last reported NTP state, and since when it has said "not synced".

Revision ID: 0104
Revises: 0103
"""

import sqlalchemy as sa
from alembic import op

revision = "0104"
down_revision = "0103"


def upgrade() -> None:
    op.add_column("devices", sa.Column("ntp_synced", sa.Boolean, nullable=True))
    op.add_column("devices", sa.Column("ntp_unsynced_since", sa.DateTime, nullable=True))


def downgrade() -> None:
    op.drop_column("devices", "ntp_unsynced_since")
    op.drop_column("devices", "ntp_synced")
