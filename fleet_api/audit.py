"""The audit log: who changed what, when, written in the same transaction as the change."""

from typing import Any, Dict, Optional

from sqlalchemy.engine import Connection

from fleet_api.auth import Principal
from fleet_api.control.twin import redact
from fleet_api.db import audit, utcnow


def record(conn: Connection, who: Principal, action: str, target: str,
           detail: Optional[Dict[str, Any]] = None) -> None:
    conn.execute(audit.insert().values(
        at=utcnow(), actor=f"{who.name or 'token'}#{who.token_id} ({who.role})",
        action=action, target=target[:200], detail=redact(detail or {})))
