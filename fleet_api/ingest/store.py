"""Writes from ingest: records exactly once per (device, stream, epoch, seq), presence,
reported config and rejects, each batch in one transaction."""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Dict, List, Optional, Tuple

from pydantic_core import to_json
from sqlalchemy import bindparam, case, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import (
    DBAPIError,
    DisconnectionError,
    InterfaceError,
    InternalError,
    OperationalError,
    SQLAlchemyError,
)

from fleet_api.control.box_commands import apply_result
from fleet_api.db import devices, rejects, to_naive_utc
from fleet_api.devices.clones import record_birth

IDENTITY = ["device_id", "stream", "epoch", "seq"]


@dataclass
class Batch:
    """What one flush writes."""

    rows: List[Dict[str, Any]] = field(default_factory=list)
    seen: Dict[str, str] = field(default_factory=dict)  # device_id -> new state
    reported: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    rejected: List[Dict[str, Any]] = field(default_factory=list)
    # CommandResult payloads: (device_id, command_id, status, result, error, ts)
    results: List[Tuple[str, str, str, Dict[str, Any], Optional[str], datetime]] = field(
        default_factory=list)
    # (device_id, stream, epoch, seqs) to confirm to each box once committed.
    acks: List[Tuple[str, str, str, List[int]]] = field(default_factory=list)
    # The NTP state of each device's last batch that said (True or False).
    ntp: Dict[str, bool] = field(default_factory=dict)
    # Live (not retained) births: (device_id, boot_id, agent_version).
    births: List[Tuple[str, str, Optional[str]]] = field(default_factory=list)
    # Records refused for good, (device_id, stream, epoch, seqs, reason): the box is told
    # so its outbox forgets them instead of sending them forever.
    refusals: List[Tuple[str, str, str, List[int], str]] = field(default_factory=list)
    stored: int = 0  # records new to the database, once written


# What a write may raise when the data is at fault, or the store: store_failure() tells.
WRITE_ERRORS = (SQLAlchemyError, ArithmeticError, ValueError, TypeError)
# PostgreSQL error classes that name the data: data exception, integrity constraint
# violation, program limit exceeded. Every other class (connection, resources, operator
# intervention, transaction rollback, ...) is the store's.
_DATA_SQLSTATES = ("22", "23", "54")


def store_failure(exc: BaseException) -> bool:
    """True when the store itself failed (down, locked, full): retry, lose nothing. False
    when something inside the data was refused (a value out of range, a byte the driver
    cannot send): retrying the same message can only fail the same way."""
    if not isinstance(exc, SQLAlchemyError):
        return False  # OverflowError, UnicodeEncodeError, a serialiser's ValueError
    if isinstance(exc, DisconnectionError):
        return True
    if not isinstance(exc, DBAPIError):
        return True  # the pool, a rolled-back transaction: nothing about the data
    if exc.connection_invalidated:
        return True
    code = getattr(exc.orig, "sqlstate", None)
    if code:
        return not str(code).startswith(_DATA_SQLSTATES)
    return isinstance(exc, (OperationalError, InterfaceError, InternalError))


def brief(exc: BaseException) -> str:
    """The driver's own words for a refusal, without SQLAlchemy's statement and params."""
    cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    lines = str(cause).strip().splitlines()
    return (lines[0] if lines else type(cause).__name__)[:300]


def clean_text(value: str, limit: int) -> str:
    """Text any column takes: no NUL (PostgreSQL), no lone surrogate (UTF-8), bounded."""
    text = value[:limit].replace("\x00", "\\x00")
    return text.encode("utf-8", "replace").decode("utf-8")


COLUMNS = ("device_id", "stream", "epoch", "seq", "ts", "received_at", "metrics", "sources",
           "gap_to")
_SQLITE_INSERT = (f"INSERT INTO records ({', '.join(COLUMNS)}) VALUES "
                  f"({', '.join('?' for _ in COLUMNS)}) "
                  "ON CONFLICT (device_id, stream, epoch, seq) DO NOTHING")
# One statement per batch on PostgreSQL: the columns go as arrays and unnest() makes the
# rows (a row-per-statement executemany cost the server a parse-bind-execute per record).
# In binary (%b): psycopg's text form escaped each JSON element's quotes with a regex,
# a third of the ingest's profile on PostgreSQL.
# DO NOTHING also skips a key repeated inside the same batch.
_PG_TYPES = ("varchar", "varchar", "varchar", "bigint", "timestamp", "timestamp", "json",
             "json", "bigint")
_PG_INSERT = (f"INSERT INTO records ({', '.join(COLUMNS)}) SELECT * FROM unnest("
              + ", ".join(f"%b::{t}[]" for t in _PG_TYPES) + ") "
              "ON CONFLICT ON CONSTRAINT records_identity DO NOTHING")


_PG_SEEN = ("UPDATE devices SET state = seen.state, last_seen = %s FROM unnest("
            "%s::varchar[], %s::varchar[]) AS seen(device_id, state) "
            "WHERE devices.device_id = seen.device_id")


def _dumps(value: Any) -> str:
    return to_json(value).decode()


def _sqlite_time(value: datetime) -> str:
    # SQLAlchemy's own DATETIME text form on SQLite, so its queries compare equal.
    return value.isoformat(sep=" ", timespec="microseconds")


def insert_records(conn: Connection, rows: List[Dict[str, Any]]) -> int:
    """Insert, skipping (device, stream, epoch, seq) already stored; return how many were
    new. Straight to the driver's executemany with JSON already serialised: the
    SQLAlchemy Core path spent most of the ingest's database time on per-row parameter
    processing (profile in docs/benchmarks/fleet.md)."""
    if not rows:
        return 0
    dumps = _dumps
    if conn.dialect.name == "postgresql":
        columns = tuple([r[c] for r in rows] for c in COLUMNS)
        columns[6][:] = [dumps(v) for v in columns[6]]
        columns[7][:] = [dumps(v) for v in columns[7]]
        result = conn.exec_driver_sql(_PG_INSERT, columns)
    else:
        received: Dict[datetime, str] = {}  # a batch shares one receive time
        for r in rows:
            if r["received_at"] not in received:
                received[r["received_at"]] = _sqlite_time(r["received_at"])
        params: List[Tuple[Any, ...]] = [
            (r["device_id"], r["stream"], r["epoch"], r["seq"], _sqlite_time(r["ts"]),
             received[r["received_at"]], dumps(r["metrics"]), dumps(r["sources"]),
             r["gap_to"]) for r in rows]
        result = conn.exec_driver_sql(_SQLITE_INSERT, params)  # type: ignore[arg-type]
    count = result.rowcount
    return int(count) if count is not None and count >= 0 else len(rows)


def write_batch(conn: Connection, batch: Batch, now: datetime) -> int:
    stored = insert_records(conn, batch.rows)
    if batch.seen and conn.dialect.name == "postgresql":
        # One statement for the batch's devices, not an UPDATE per device.
        conn.exec_driver_sql(_PG_SEEN, (now, list(batch.seen), list(batch.seen.values())))
    elif batch.seen:
        conn.execute(
            update(devices).where(devices.c.device_id == bindparam("b_id"))
            .values(state=bindparam("b_state"), last_seen=bindparam("b_seen")),
            [{"b_id": d, "b_state": s, "b_seen": now} for d, s in batch.seen.items()],
        )
    for device_id, synced in batch.ntp.items():
        conn.execute(update(devices).where(devices.c.device_id == device_id).values(
            ntp_synced=synced, ntp_unsynced_since=None if synced else case(
                (devices.c.ntp_unsynced_since.is_(None), now),
                else_=devices.c.ntp_unsynced_since)))
    for device_id, boot_id, version in batch.births:
        record_birth(conn, device_id, boot_id, version, now)
    for device_id, body in batch.reported.items():
        tier = body.get("tier_applied") or {}
        conn.execute(update(devices).where(devices.c.device_id == device_id).values(
            reported=body, tier_applied_mbps=tier.get("down_mbps")))
    for device_id, command_id, status, result, error, at in batch.results:
        apply_result(conn, device_id, command_id, status, result, error, at)
    if batch.rejected:
        conn.execute(rejects.insert(), batch.rejected)
        counts: Dict[str, int] = {}
        reasons: Dict[str, str] = {}
        for item in batch.rejected:
            if item["device_id"]:
                counts[item["device_id"]] = counts.get(item["device_id"], 0) + 1
                reasons[item["device_id"]] = item["reason"]
        for device_id, count in counts.items():
            conn.execute(update(devices).where(devices.c.device_id == device_id).values(
                rejected_count=devices.c.rejected_count + count,
                last_reject_reason=reasons[device_id]))
    return stored


def record_row(device_id: str, stream: str, epoch: str, record: Any, received: datetime
               ) -> Dict[str, Any]:
    gap: Optional[int] = record.gap.to_seq if record.gap is not None else None
    return {
        "device_id": device_id, "stream": stream, "epoch": epoch, "seq": record.seq,
        "ts": to_naive_utc(record.ts), "received_at": received,
        "metrics": record.metrics,
        "sources": {k: v.model_dump(exclude_none=True) for k, v in record.sources.items()},
        "gap_to": gap,
    }
