"""Device certificates signed by the fleet's CA, and their revocations.

Revision ID: 0101
Revises: 0100
"""

import sqlalchemy as sa
from alembic import op

revision = "0101"
down_revision = "0100"


def upgrade() -> None:
    op.create_table(
        "certificates",
        sa.Column("serial", sa.String(40), primary_key=True),
        sa.Column("device_id", sa.String(63), nullable=False),
        sa.Column("issued_at", sa.DateTime, nullable=False),
        sa.Column("not_after", sa.DateTime, nullable=False),
        sa.Column("revoked_at", sa.DateTime, nullable=True),
    )
    op.create_index("certificates_device", "certificates", ["device_id"])


def downgrade() -> None:
    op.drop_index("certificates_device", "certificates")
    op.drop_table("certificates")
