"""Tables, engines and migrations. SQLite (WAL) is the embedded default; PostgreSQL for a city.

Times are stored as naive UTC datetimes on both engines, converted at the edges.
"""

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
)
Index("devices_district", devices.c.district)

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


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def iso(value: Optional[datetime]) -> Optional[str]:
    return None if value is None else value.replace(tzinfo=timezone.utc).isoformat()


def to_naive_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value
    return value.astimezone(timezone.utc).replace(tzinfo=None)


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
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


def make_engine(url: str) -> Engine:
    full = sqlalchemy_url(url)
    if full.startswith("sqlite"):
        path = full[len("sqlite:///"):]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
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
