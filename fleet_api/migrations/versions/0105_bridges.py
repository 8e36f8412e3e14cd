"""District bridges: one broker account per bridge, created by an admin, confined to the
districts it was created for (docs/security.md, "Bridges").

Revision ID: 0105
Revises: 0104
"""

import sqlalchemy as sa
from alembic import op

revision = "0105"
down_revision = "0104"


def upgrade() -> None:
    op.create_table(
        "bridges",
        sa.Column("name", sa.String(40), primary_key=True),
        sa.Column("districts", sa.JSON, nullable=False),
        sa.Column("password_hash", sa.String(200), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("bridges")
