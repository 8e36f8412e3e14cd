"""API tokens and roles. Tokens are random, shown once, and stored as SHA-256 hashes.

Roles are ordered: viewer < technician < operator < admin; each may do what the ones
before it may.
"""

import hashlib
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Deque, Dict, Optional

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


class FailureLimiter:
    """Failed sign-ins per client address: after `limit` within `window_s`, refuse that
    address (429) until the window has passed. Per process; tokens are 256-bit random,
    so this is about log noise and load, not guessing."""

    def __init__(self, limit: int = 20, window_s: float = 60.0) -> None:
        self.limit = limit
        self.window_s = window_s
        self._fails: Dict[str, Deque[float]] = {}
        self._lock = threading.Lock()

    def _trim(self, key: str, now: float) -> Deque[float]:
        q = self._fails.setdefault(key, deque())
        while q and now - q[0] > self.window_s:
            q.popleft()
        return q

    def blocked_for(self, key: str) -> float:
        """Seconds this address must wait; 0 when it may try."""
        now = time.monotonic()
        with self._lock:
            q = self._trim(key, now)
            if len(q) < self.limit:
                return 0.0
            return max(1.0, self.window_s - (now - q[0]))

    def failed(self, key: str) -> None:
        now = time.monotonic()
        with self._lock:
            self._trim(key, now).append(now)
            if len(self._fails) > 10000:  # forget idle addresses
                for k in [k for k, q in self._fails.items() if not q]:
                    del self._fails[k]
