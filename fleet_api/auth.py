"""API tokens and roles. Tokens are random, shown once, and stored as SHA-256 hashes.

Roles are ordered: viewer < technician < operator < admin; each may do what the ones
before it may.
"""

import hashlib
import secrets
from dataclasses import dataclass
from typing import Optional

from sqlalchemy import select
from sqlalchemy.engine import Engine

from fleet_api.db import tokens, utcnow

ROLES = ("viewer", "technician", "operator", "admin")
COOKIE = "simpul_session"


@dataclass(frozen=True)
class Principal:
    token_id: int
    role: str
    name: str

    def may(self, role: str) -> bool:
        return ROLES.index(self.role) >= ROLES.index(role)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(engine: Engine, role: str, name: str = "") -> str:
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    token = "spl_" + secrets.token_urlsafe(32)
    with engine.begin() as conn:
        conn.execute(tokens.insert().values(token_hash=hash_token(token), role=role, name=name,
                                            created_at=utcnow(), revoked=False))
    return token


def lookup(engine: Engine, token: str) -> Optional[Principal]:
    if not token or len(token) > 200:
        return None
    with engine.connect() as conn:
        row = conn.execute(select(tokens.c.id, tokens.c.role, tokens.c.name, tokens.c.revoked)
                           .where(tokens.c.token_hash == hash_token(token))).first()
    if row is None or row.revoked:
        return None
    return Principal(row.id, row.role, row.name)
