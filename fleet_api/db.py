"""Tables, engines and migrations. SQLite (WAL) is the embedded default; PostgreSQL for a city.

Times are stored as naive UTC datetimes on both engines, converted at the edges.
"""

import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
)
from sqlalchemy.engine import Engine

metadata = MetaData()

devices = Table(
    "devices", metadata,
    Column("device_id", String(63), primary_key=True),
    Column("site", String(200), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("district", String(100), nullable=False),
    Column("lat", Float, nullable=False),
    Column("lon", Float, nullable=False),
    Column("tags", JSON, nullable=False, default=list),
    Column("password_hash", String(200), nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("state", String(8), nullable=False, default="unknown"),
    Column("last_seen", DateTime, nullable=True),
    Column("boot_id", String(32), nullable=True),
    Column("tier_mbps", Float, nullable=True),
    Column("tier_applied_mbps", Float, nullable=True),
    Column("desired", JSON, nullable=False, default=dict),
    Column("desired_version", Integer, nullable=False, default=0),
    Column("reported", JSON, nullable=False, default=dict),
    Column("rejected_count", Integer, nullable=False, default=0),
    Column("last_reject_reason", Text, nullable=True),
    # 0002: the group whose template this device follows, and which template revision.
    Column("group_name", String(100), nullable=True),
    Column("group_rev", Integer, nullable=True),
    # The desired version the broker last accepted (retained); behind means republish.
    Column("published_version", Integer, nullable=False, default=0),
    # 0102: the agent version of the last birth; when a cloned card was suspected.
    Column("agent_version", String(64), nullable=True),
    Column("clone_suspected_at", DateTime, nullable=True),
    # 0102: credential rotation (fleet_api/devices/rotation.py); the broker gets the pending hash
    # while the state is "switched".
    Column("pending_password_hash", String(200), nullable=True),
    Column("rotation_id", String(32), nullable=True),
    Column("rotation_state", String(16), nullable=True),
    Column("rotation_since", DateTime, nullable=True),
    # 0104: the box's last reported NTP state (TelemetryBatch.ntp_synced), and since when
    # it has reported "not synced" without a break.
    Column("ntp_synced", Boolean, nullable=True),
    Column("ntp_unsynced_since", DateTime, nullable=True),
)
Index("devices_district", devices.c.district)
Index("devices_group", devices.c.group_name)

records = Table(
    "records", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=True),
    Column("device_id", String(63), nullable=False),
    Column("stream", String(32), nullable=False),
    Column("epoch", String(32), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("ts", DateTime, nullable=False),
    Column("received_at", DateTime, nullable=False),
    Column("metrics", JSON, nullable=False),
    Column("sources", JSON, nullable=False),
    Column("gap_to", BigInteger, nullable=True),
    UniqueConstraint("device_id", "stream", "epoch", "seq", name="records_identity"),
)
Index("records_device_ts", records.c.device_id, records.c.stream, records.c.ts)

tokens = Table(
    "tokens", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("role", String(16), nullable=False),
    Column("name", String(100), nullable=False, default=""),
    Column("created_at", DateTime, nullable=False),
    Column("revoked", Boolean, nullable=False, default=False),
)

workers = Table(
    "workers", metadata,
    Column("name", String(100), primary_key=True),
    Column("connected", Boolean, nullable=False),
    Column("beat_at", DateTime, nullable=False),
)

rejects = Table(
    "rejects", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("device_id", String(63), nullable=True),
    Column("topic", String(300), nullable=False),
    Column("reason", Text, nullable=False),
    Column("received_at", DateTime, nullable=False),
)

# -- 0002: twin, tiers, groups, rollouts, commands, leases, audit ------------------------
tiers = Table(
    "tiers", metadata,
    Column("mbps", Float, primary_key=True),
    Column("down_mbps", Float, nullable=False),
    Column("up_mbps", Float, nullable=False),
    Column("per_client_mbps", Float, nullable=True),
    Column("name", String(100), nullable=False, default=""),
)

groups = Table(
    "groups", metadata,
    Column("name", String(100), primary_key=True),
    Column("rev", Integer, nullable=False),
    Column("thresholds", JSON, nullable=False, default=dict),
    Column("created_at", DateTime, nullable=False),
)

group_templates = Table(
    "group_templates", metadata,
    Column("group_name", String(100), primary_key=True),
    Column("rev", Integer, primary_key=True),
    Column("template", JSON, nullable=False),
    Column("created_at", DateTime, nullable=False),
)

rollouts = Table(
    "rollouts", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("group_name", String(100), nullable=False),
    Column("target_rev", Integer, nullable=False),
    Column("stage_size", Integer, nullable=False),
    Column("stage_timeout_s", Float, nullable=False),
    Column("status", String(16), nullable=False),  # running, completed, halted
    Column("stage", Integer, nullable=False, default=0),
    # device_id -> desired version the current stage waits for
    Column("waiting", JSON, nullable=False, default=dict),
    Column("done", JSON, nullable=False, default=list),
    Column("failed", JSON, nullable=False, default=list),
    Column("reason", Text, nullable=True),
    Column("created_by", String(100), nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("stage_started_at", DateTime, nullable=True),
    Column("updated_at", DateTime, nullable=False),
)

commands = Table(
    "commands", metadata,
    Column("command_id", String(64), primary_key=True),
    Column("device_id", String(63), nullable=False),
    Column("name", String(32), nullable=False),
    Column("args", JSON, nullable=False),
    Column("status", String(16), nullable=False),
    Column("result", JSON, nullable=True),
    Column("error", Text, nullable=True),
    Column("created_by", String(100), nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("expires_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    Column("retry_of", String(64), nullable=True),
)
Index("commands_device", commands.c.device_id, commands.c.created_at)

leases = Table(
    "leases", metadata,
    Column("name", String(100), primary_key=True),
    Column("holder", String(200), nullable=False),
    Column("expires_at", DateTime, nullable=False),
)

audit = Table(
    "audit", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=True),
    Column("at", DateTime, nullable=False),
    Column("actor", String(100), nullable=False),
    Column("action", String(64), nullable=False),
    Column("target", String(200), nullable=False),
    Column("detail", JSON, nullable=False, default=dict),
)
Index("audit_at", audit.c.at)

# -- 0003: alerts, events, webhooks --------------------------------------------------------
alerts = Table(
    "alerts", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("device_id", String(63), nullable=False),
    Column("rule", String(32), nullable=False),
    Column("subject", String(64), nullable=False, default=""),
    Column("category", String(16), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("status", String(16), nullable=False),  # open, resolved
    Column("message", Text, nullable=False),
    Column("value", Float, nullable=True),
    Column("count", Integer, nullable=False, default=1),
    # device:rule:subject while open, NULL once resolved: the unique key deduplicates.
    Column("open_key", String(200), nullable=True, unique=True),
    Column("opened_at", DateTime, nullable=False),
    Column("last_seen_at", DateTime, nullable=False),
    Column("resolved_at", DateTime, nullable=True),
    Column("acked_by", String(100), nullable=True),
    Column("acked_at", DateTime, nullable=True),
)
Index("alerts_device", alerts.c.device_id, alerts.c.status)
Index("alerts_status", alerts.c.status, alerts.c.opened_at)

events = Table(
    "events", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=True),
    Column("at", DateTime, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("data", JSON, nullable=False),
)

webhooks = Table(
    "webhooks", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(100), nullable=False),
    Column("url", String(500), nullable=False),
    Column("secret", String(200), nullable=False),
    Column("categories", JSON, nullable=False),
    Column("active", Boolean, nullable=False, default=True),
    Column("created_at", DateTime, nullable=False),
)

deliveries = Table(
    "deliveries", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=True),
    Column("webhook_id", Integer, nullable=False),
    Column("event_id", BigInteger, nullable=False),
    Column("body", Text, nullable=False),
    Column("status", String(16), nullable=False),  # pending, delivered, failed
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_at", DateTime, nullable=False),
    Column("last_error", Text, nullable=True),
    Column("created_at", DateTime, nullable=False),
)
Index("deliveries_due", deliveries.c.status, deliveries.c.next_at)

# -- 0004: rollups and job marks ------------------------------------------------------------
def _rollup(name: str) -> Table:
    return Table(
        name, metadata,
        Column("device_id", String(63), primary_key=True),
        Column("stream", String(32), primary_key=True),
        Column("metric", String(64), primary_key=True),
        Column("bucket", DateTime, primary_key=True),
        Column("count", Integer, nullable=False),
        Column("sum", Float, nullable=False),
        Column("min", Float, nullable=False),
        Column("max", Float, nullable=False),
    )


rollup_1m = _rollup("rollup_1m")
rollup_1h = _rollup("rollup_1h")
Index("rollup_1m_metric", rollup_1m.c.metric, rollup_1m.c.bucket)
Index("rollup_1h_metric", rollup_1h.c.metric, rollup_1h.c.bucket)

marks = Table(
    "marks", metadata,
    Column("name", String(100), primary_key=True),
    Column("at", DateTime, nullable=False),
)
Index("records_received", records.c.received_at)


def inserted_id(result: Any) -> int:
    key = result.inserted_primary_key
    if not key:
        raise RuntimeError("the insert returned no primary key")
    return int(key[0])


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def iso(value: Optional[datetime]) -> Optional[str]:
    if value is None:
        return None
    if value.tzinfo is None:  # stored naive UTC; the same text, a sixth of the time
        return value.isoformat() + "+00:00"
    return value.replace(tzinfo=timezone.utc).isoformat()


def to_naive_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value
    if value.tzinfo is not timezone.utc:
        value = value.astimezone(timezone.utc)
    # The constructor, not .replace(tzinfo=None): a quarter of its cost on CPython 3.11,
    # and the ingest calls this for every record.
    return datetime(value.year, value.month, value.day, value.hour, value.minute,
                    value.second, value.microsecond)


def sqlalchemy_url(url: str) -> str:
    """Accept the CLI's sqlite:///path and postgresql://... forms."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    if url.startswith("sqlite:///"):
        return url
    raise ValueError(f"database URL {url!r} must start with sqlite:/// or postgresql://")


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    # FULL: the ingest confirms records to boxes after the commit, and a box then forgets
    # them, so a commit must survive a power cut of the fleet host too.
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


def private_sqlite_files(path: Path) -> None:
    """The database holds password hashes, token hashes and webhook secrets: owner only.

    The file is created 0600 before SQLite opens it, and SQLite gives the -wal and -shm
    files it creates the main file's mode. Files of an older install, or a restored
    copy, are tightened here too."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    os.close(fd)
    for each in (path, Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}-journal")):
        try:
            if each.stat().st_mode & 0o077:
                each.chmod(0o600)
        except FileNotFoundError:
            pass


def make_engine(url: str) -> Engine:
    full = sqlalchemy_url(url)
    if full.startswith("sqlite"):
        path = full[len("sqlite:///"):]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            private_sqlite_files(Path(path))
        engine = create_engine(full, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(full, pool_size=10, max_overflow=20, pool_pre_ping=True)


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest Alembic revision."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")

# -- 0101: device certificates from the fleet's CA (fleet_api/devices/pki.py) ---------
certificates = Table(
    "certificates", metadata,
    Column("serial", String(40), primary_key=True),  # hex; X.509 serials pass 64 bits
    Column("device_id", String(63), nullable=False),
    Column("issued_at", DateTime, nullable=False),
    Column("not_after", DateTime, nullable=False),
    Column("revoked_at", DateTime, nullable=True),
)
Index("certificates_device", certificates.c.device_id)

# -- 0102: births, kept a day, for cloned-card detection (fleet_api/devices/identity.py) -----------
births = Table(
    "births", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("device_id", String(63), nullable=False),
    Column("boot_id", String(32), nullable=False),
    Column("received_at", DateTime, nullable=False),
)
Index("births_device", births.c.device_id, births.c.received_at)

# -- 0103: staged rollouts of agent updates (fleet_api/updates/rollout.py) -------------------
update_rollouts = Table(
    "update_rollouts", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("version", String(64), nullable=False),
    Column("url", Text, nullable=False),
    Column("plan", JSON, nullable=False),  # waves: lists of device ids, canaries first
    Column("max_failure_ratio", Float, nullable=False),
    Column("settle_s", Float, nullable=False),
    Column("status", String(16), nullable=False),  # running | stopped | done
    Column("reason", Text, nullable=True),
    Column("created_by", String(200), nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
)
update_targets = Table(
    "update_targets", metadata,
    Column("rollout_id", Integer, primary_key=True),
    Column("device_id", String(63), primary_key=True),
    Column("wave", Integer, nullable=False),
    Column("command_id", String(32), nullable=True),
    Column("sent_at", DateTime, nullable=True),
    Column("outcome", String(16), nullable=True),  # succeeded | failed
    Column("detail", Text, nullable=True),
)

# -- 0105: district bridges, one per admin-chosen set of districts (fleet_api/broker/bridges.py)
bridges = Table(
    "bridges", metadata,
    Column("name", String(40), primary_key=True),  # the broker account is simpul_bridge_<name>
    Column("districts", JSON, nullable=False),  # the districts whose boxes it may carry
    Column("password_hash", String(200), nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("created_at", DateTime, nullable=False),
)

# -- 0100: claim codes of boxes registered before their site is known (fleet_api/devices/claims.py)
claims = Table(
    "claims", metadata,
    Column("claim_code", String(32), primary_key=True),
    Column("device_id", String(63), nullable=False, unique=True),
    Column("created_at", DateTime, nullable=False),
    Column("claimed_at", DateTime, nullable=True),
    Column("claimed_via", String(16), nullable=True),
    Column("site", String(200), nullable=True),
    Column("district", String(100), nullable=True),
    Column("lat", Float, nullable=True),
    Column("lon", Float, nullable=True),
)
