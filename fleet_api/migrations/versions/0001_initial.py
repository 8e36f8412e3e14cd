"""Initial schema: devices, records, tokens, workers, rejects.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def upgrade() -> None:
    big = sa.BigInteger().with_variant(sa.Integer, "sqlite")
    op.create_table(
        "devices",
        sa.Column("device_id", sa.String(63), primary_key=True),
        sa.Column("site", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("district", sa.String(100), nullable=False),
        sa.Column("lat", sa.Float, nullable=False),
        sa.Column("lon", sa.Float, nullable=False),
        sa.Column("tags", sa.JSON, nullable=False),
        sa.Column("password_hash", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("state", sa.String(8), nullable=False),
        sa.Column("last_seen", sa.DateTime, nullable=True),
        sa.Column("boot_id", sa.String(32), nullable=True),
        sa.Column("tier_mbps", sa.Float, nullable=True),
        sa.Column("tier_applied_mbps", sa.Float, nullable=True),
        sa.Column("desired", sa.JSON, nullable=False),
        sa.Column("desired_version", sa.Integer, nullable=False),
        sa.Column("reported", sa.JSON, nullable=False),
        sa.Column("rejected_count", sa.Integer, nullable=False),
        sa.Column("last_reject_reason", sa.Text, nullable=True),
    )
    op.create_index("devices_district", "devices", ["district"])
    op.create_table(
        "records",
        sa.Column("id", big, primary_key=True, autoincrement=True),
        sa.Column("device_id", sa.String(63), nullable=False),
        sa.Column("stream", sa.String(32), nullable=False),
        sa.Column("epoch", sa.String(32), nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("ts", sa.DateTime, nullable=False),
        sa.Column("received_at", sa.DateTime, nullable=False),
        sa.Column("metrics", sa.JSON, nullable=False),
        sa.Column("sources", sa.JSON, nullable=False),
        sa.Column("gap_to", sa.BigInteger, nullable=True),
        sa.UniqueConstraint("device_id", "stream", "epoch", "seq", name="records_identity"),
    )
    op.create_index("records_device_ts", "records", ["device_id", "stream", "ts"])
    op.create_table(
        "tokens",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("revoked", sa.Boolean, nullable=False),
    )
    op.create_table(
        "workers",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("connected", sa.Boolean, nullable=False),
        sa.Column("beat_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "rejects",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("device_id", sa.String(63), nullable=True),
        sa.Column("topic", sa.String(300), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("received_at", sa.DateTime, nullable=False),
    )


def downgrade() -> None:
    for name in ("rejects", "workers", "tokens", "records", "devices"):
        op.drop_table(name)
