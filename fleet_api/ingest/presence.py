"""What the fleet can honestly say about a device's presence."""

from datetime import datetime, timedelta
from typing import Any, Optional, Tuple

from sqlalchemy import select
from sqlalchemy.engine import Connection

from fleet_api.db import workers

INGEST_BEAT_STALE_S = 20.0


def ingest_alive(conn: Connection, now: datetime) -> bool:
    """True when some ingest worker is connected to the broker and beat recently."""
    cutoff = now - timedelta(seconds=INGEST_BEAT_STALE_S)
    row = conn.execute(select(workers.c.name).where(workers.c.connected.is_(True))
                       .where(workers.c.beat_at >= cutoff).limit(1)).first()
    return row is not None


def presence(state: str, last_seen: Optional[datetime], now: datetime, timeout_s: float,
             alive: bool) -> Tuple[str, bool]:
    """(state, online). `unknown` when the fleet cannot hear the broker."""
    if not alive:
        return "unknown", False
    if state == "online":
        if last_seen is None or (now - last_seen).total_seconds() > timeout_s:
            return "offline", False
        return "online", True
    return state, False


def describe(row: Any) -> str:
    return f"{row.device_id} ({row.site})"
