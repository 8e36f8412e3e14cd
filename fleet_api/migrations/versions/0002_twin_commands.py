"""Twin, tiers, groups, rollouts, commands, leases and the audit log.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    big = sa.BigInteger().with_variant(sa.Integer, "sqlite")
    with op.batch_alter_table("devices") as batch:
        batch.add_column(sa.Column("group_name", sa.String(100), nullable=True))
        batch.add_column(sa.Column("group_rev", sa.Integer, nullable=True))
        batch.add_column(sa.Column("published_version", sa.Integer, nullable=False,
                                   server_default="0"))
    op.create_index("devices_group", "devices", ["group_name"])
    tiers = op.create_table(
        "tiers",
        sa.Column("mbps", sa.Float, primary_key=True),
        sa.Column("down_mbps", sa.Float, nullable=False),
        sa.Column("up_mbps", sa.Float, nullable=False),
        sa.Column("per_client_mbps", sa.Float, nullable=True),
        sa.Column("name", sa.String(100), nullable=False),
    )
    op.bulk_insert(tiers, [
        {"mbps": 100.0, "down_mbps": 100.0, "up_mbps": 50.0, "per_client_mbps": 5.0,
         "name": "100 Mbps"},
        {"mbps": 300.0, "down_mbps": 300.0, "up_mbps": 100.0, "per_client_mbps": 10.0,
         "name": "300 Mbps"},
    ])
    op.create_table(
        "groups",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("rev", sa.Integer, nullable=False),
        sa.Column("thresholds", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "group_templates",
        sa.Column("group_name", sa.String(100), primary_key=True),
        sa.Column("rev", sa.Integer, primary_key=True),
        sa.Column("template", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "rollouts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("group_name", sa.String(100), nullable=False),
        sa.Column("target_rev", sa.Integer, nullable=False),
        sa.Column("stage_size", sa.Integer, nullable=False),
        sa.Column("stage_timeout_s", sa.Float, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("stage", sa.Integer, nullable=False),
        sa.Column("waiting", sa.JSON, nullable=False),
        sa.Column("done", sa.JSON, nullable=False),
        sa.Column("failed", sa.JSON, nullable=False),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("created_by", sa.String(100), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("stage_started_at", sa.DateTime, nullable=True),
        sa.Column("updated_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "commands",
        sa.Column("command_id", sa.String(64), primary_key=True),
        sa.Column("device_id", sa.String(63), nullable=False),
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("args", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("result", sa.JSON, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("created_by", sa.String(100), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("expires_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.Column("retry_of", sa.String(64), nullable=True),
    )
    op.create_index("commands_device", "commands", ["device_id", "created_at"])
    op.create_table(
        "leases",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("holder", sa.String(200), nullable=False),
        sa.Column("expires_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "audit",
        sa.Column("id", big, primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime, nullable=False),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(200), nullable=False),
        sa.Column("detail", sa.JSON, nullable=False),
    )
    op.create_index("audit_at", "audit", ["at"])


def downgrade() -> None:
    op.drop_index("audit_at", "audit")
    for name in ("audit", "leases", "commands", "rollouts", "group_templates", "groups",
                 "tiers"):
        op.drop_table(name)
    op.drop_index("devices_group", "devices")
    with op.batch_alter_table("devices") as batch:
        batch.drop_column("published_version")
        batch.drop_column("group_rev")
        batch.drop_column("group_name")
