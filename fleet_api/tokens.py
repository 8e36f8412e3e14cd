"""API tokens as the admin manages them: listed, issued and revoked, each change with its
audit entry. Making and checking a token is fleet_api/auth.py, which sits below the audit
log (fleet_api/audit.py imports its Principal), so this cannot live there."""

from typing import Any, Dict, List

from sqlalchemy import select, update
from sqlalchemy.engine import Engine

from fleet_api.audit import record
from fleet_api.auth import Principal, create_token, hash_token
from fleet_api.db import iso, tokens
from fleet_api.errors import FleetError


class NoToken(FleetError, LookupError):
    """No such token."""


def listing(engine: Engine) -> List[Dict[str, Any]]:
    """Every token (id, role, name, created_at, revoked), oldest first; never a hash."""
    with engine.connect() as conn:
        rows = conn.execute(select(tokens).order_by(tokens.c.id)).fetchall()
    return [{"id": r.id, "role": r.role, "name": r.name, "created_at": iso(r.created_at),
             "revoked": r.revoked} for r in rows]


def issue(engine: Engine, who: Principal, role: str, name: str) -> Dict[str, Any]:
    """A new token (id, role, name, and the token itself, which is not stored) and its
    audit entry."""
    token = create_token(engine, role, name)
    with engine.begin() as conn:
        row = conn.execute(select(tokens.c.id)
                           .where(tokens.c.token_hash == hash_token(token))).one()
        record(conn, who, "token.create", f"token:{row.id}", {"role": role, "name": name})
    return {"id": row.id, "role": role, "name": name, "token": token}


def revoke(engine: Engine, who: Principal, token_id: int) -> None:
    """Revoke the token, with its audit entry; NoToken when there is none."""
    with engine.begin() as conn:
        done = conn.execute(update(tokens).where(tokens.c.id == token_id).values(revoked=True))
        if not done.rowcount:
            raise NoToken(f"no token {token_id}")
        record(conn, who, "token.revoke", f"token:{token_id}")
