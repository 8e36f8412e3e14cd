"""The audit log: who changed what, when, written in the same transaction as the change;
and its listing for the admin, as plain dicts."""

from typing import Any, Dict, List, Optional

from sqlalchemy import select
from sqlalchemy.engine import Connection, Engine

from fleet_api.auth import Principal
from fleet_api.control.twin import redact
from fleet_api.db import audit, iso, utcnow


def record(conn: Connection, who: Principal, action: str, target: str,
           detail: Optional[Dict[str, Any]] = None) -> None:
    conn.execute(audit.insert().values(
        at=utcnow(), actor=f"{who.name or 'token'}#{who.token_id} ({who.role})",
        action=action, target=target[:200], detail=redact(detail or {})))


def listing(engine: Engine, target: Optional[str], action: Optional[str],
            limit: int) -> List[Dict[str, Any]]:
    """The newest `limit` entries (id, at, actor, action, target, detail), newest first,
    of the given target and action when those are given."""
    query = select(audit).order_by(audit.c.id.desc()).limit(limit)
    if target is not None:
        query = query.where(audit.c.target == target)
    if action is not None:
        query = query.where(audit.c.action == action)
    with engine.connect() as conn:
        rows = conn.execute(query).fetchall()
    return [{"id": r.id, "at": iso(r.at), "actor": r.actor, "action": r.action,
             "target": r.target, "detail": r.detail or {}} for r in rows]
