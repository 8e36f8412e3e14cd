"""Commands: create, publish (QoS 1, with an MQTT message expiry), follow the box's
results, time out, retry.

Status: queued (stored) -> delivered (the broker took it for the box) -> received (the box
said so) -> succeeded | failed | expired. A status never goes back; `rejected` from the
box is `failed` with its reason.
"""

import logging
import secrets
from datetime import datetime, timedelta, timezone
from typing import Any, Dict, List, Optional

from sqlalchemy import Text, cast, select, update
from sqlalchemy.engine import Connection, Engine

from fleet_api import sealing
from fleet_api.audit import record
from fleet_api.auth import Principal
from fleet_api.broker.publisher import Publisher
from fleet_api.control.twin import redact
from fleet_api.db import commands, devices, to_naive_utc, utcnow
from simpul_wire.models import Command, encode
from simpul_wire.topics import topic

log = logging.getLogger("simpul.commands")

# What a technician may run; an operator may run anything.
FIELD_COMMANDS = frozenset({"self_test", "diagnostic", "ping", "read_sensors"})
FINAL = ("succeeded", "failed", "expired")
OPEN = ("queued", "delivered", "received")
# Commands whose stored args may hold sealed secrets (fleet_api/sealing.py), opened only
# when published. The API refuses to create these by name (routes/commands.py), so no
# caller can get a sealed value of their choosing opened and sent to a box.
SEALED_COMMANDS = frozenset({"rotate_credentials"})
RANK = {"queued": 0, "delivered": 1, "received": 2, "succeeded": 3, "failed": 3,
        "expired": 3}


def new_id() -> str:
    return "c" + secrets.token_hex(8)


def create(conn: Connection, device_id: str, name: str, args: Dict[str, Any],
           timeout_s: float, who: str, retry_of: Optional[str] = None,
           command_id: Optional[str] = None) -> Dict[str, Any]:
    now = utcnow()
    row = {"command_id": command_id or new_id(), "device_id": device_id, "name": name, "args": args,
           "status": "queued", "result": None, "error": None, "created_by": who,
           "created_at": now, "expires_at": now + timedelta(seconds=timeout_s),
           "updated_at": now, "retry_of": retry_of}
    conn.execute(commands.insert().values(**row))
    return row


def publish(engine: Engine, publisher: Optional[Publisher], row: Dict[str, Any]) -> bool:
    """Send the command; mark it delivered once the broker took it."""
    if publisher is None:
        return False
    now = utcnow()
    remaining = (row["expires_at"] - now).total_seconds()
    if remaining <= 0:
        return False
    args = dict(row["args"] or {})
    if row["name"] in SEALED_COMMANDS:
        try:
            args = sealing.open_args(args)
        except sealing.SealingError as exc:
            _fail_unopenable(engine, row["command_id"], str(exc))
            return False
    message = Command(device_id=row["device_id"], command_id=row["command_id"],
                      name=row["name"], args=args,
                      expires_at=row["expires_at"].replace(tzinfo=timezone.utc))
    if not publisher.publish(topic(row["device_id"], "cmd", row["command_id"]),
                             encode(message), expiry_s=int(remaining) + 1):
        return False
    with engine.begin() as conn:
        conn.execute(update(commands).where(commands.c.command_id == row["command_id"],
                                            commands.c.status == "queued")
                     .values(status="delivered", updated_at=utcnow()))
    return True


def _fail_unopenable(engine: Engine, command_id: str, reason: str) -> None:
    """A sealed secret this process cannot open will never reach the box: fail the
    command now (a rotation then goes back to the old password) instead of retrying."""
    log.warning("command %s cannot be sent: %s", command_id, reason)
    with engine.begin() as conn:
        conn.execute(update(commands).where(commands.c.command_id == command_id,
                                            commands.c.status.in_(OPEN))
                     .values(status="failed", error=f"not sent: {reason}",
                             updated_at=utcnow()))


def forget_secrets(conn: Connection, command_id: str) -> None:
    """Erase the sealed values from a command's stored args (it is done with them)."""
    row = conn.execute(select(commands.c.args).where(
        commands.c.command_id == command_id)).first()
    if row is None or not row.args:
        return
    erased = sealing.erase(dict(row.args))
    if erased != row.args:
        conn.execute(update(commands).where(commands.c.command_id == command_id)
                     .values(args=erased))


def forget_final_secrets(conn: Connection, limit: int = 500) -> int:
    """Erase the sealed values of final commands nobody follows any more (a device deleted
    in the middle of a rotation). A text match on the stored JSON: the same on SQLite and
    PostgreSQL, and only for the few sealed command names."""
    rows = conn.execute(select(commands.c.command_id).where(
        commands.c.name.in_(sorted(SEALED_COMMANDS)), commands.c.status.in_(FINAL),
        cast(commands.c.args, Text).like(f'%"{sealing.SEALED}"%')).limit(limit)).fetchall()
    for row in rows:
        forget_secrets(conn, row.command_id)
    return len(rows)


def effective_status(row: Any, now: datetime) -> str:
    """What the API shows: an open command past its expiry is expired."""
    if row.status in OPEN and now > row.expires_at:
        return "expired"
    return str(row.status)


def apply_result(conn: Connection, device_id: str, command_id: str, status: str,
                 result: Dict[str, Any], error: Optional[str], at: datetime) -> bool:
    """Record a CommandResult from the box; never move a status backwards."""
    if status == "rejected":
        status, error = "failed", f"rejected by the box: {error or 'no reason given'}"
    allowed = [s for s, rank in RANK.items() if rank < RANK[status]]
    done = conn.execute(update(commands).where(
        commands.c.command_id == command_id, commands.c.device_id == device_id,
        commands.c.status.in_(allowed))
        .values(status=status, result=result or None, error=error,
                updated_at=to_naive_utc(at)))
    return bool(done.rowcount)


def expire(engine: Engine) -> int:
    """Persist `expired` for open commands past their expiry."""
    now = utcnow()
    with engine.begin() as conn:
        done = conn.execute(update(commands).where(commands.c.status.in_(OPEN),
                                                   commands.c.expires_at < now)
                            .values(status="expired", error="no result before expiry",
                                    updated_at=now))
    return int(done.rowcount or 0)


def republish_queued(engine: Engine, publisher: Optional[Publisher]) -> None:
    """Commands the broker did not take when created (it was down): try again."""
    now = utcnow()
    with engine.connect() as conn:
        rows = conn.execute(select(commands).where(commands.c.status == "queued",
                                                   commands.c.expires_at > now)
                            .limit(500)).fetchall()
    for row in rows:
        publish(engine, publisher, dict(row._mapping))


def list_for(conn: Connection, device_id: str, status: Optional[str], limit: int
             ) -> List[Any]:
    query = select(commands).where(commands.c.device_id == device_id)
    if status is not None:
        query = query.where(commands.c.status == status)
    return list(conn.execute(query.order_by(commands.c.created_at.desc()).limit(limit)))


def create_for(engine: Engine, who: Principal, device_id: str, name: str,
               args: Dict[str, Any], timeout_s: float, retry_of: Optional[str] = None
               ) -> Dict[str, Any]:
    """A new command of a person's, with its audit entry (args redacted); LookupError
    when there is no such device. The caller publishes it."""
    with engine.begin() as conn:
        if conn.execute(select(devices.c.device_id)
                        .where(devices.c.device_id == device_id)).first() is None:
            raise LookupError(device_id)
        row = create(conn, device_id, name, args, timeout_s, who.name or f"#{who.token_id}",
                     retry_of)
        record(conn, who, "command.retry" if retry_of else "command.create", device_id,
               {"command_id": row["command_id"], "name": name, "args": redact(args)})
    return row


def find(engine: Engine, device_id: str, command_id: str) -> Optional[Any]:
    with engine.connect() as conn:
        return conn.execute(select(commands).where(commands.c.command_id == command_id,
                                                   commands.c.device_id == device_id)).first()
