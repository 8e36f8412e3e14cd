"""Alerts as the API reads and acknowledges them, and the rows of the event stream the
SSE route replays. Answers are plain dicts (alert_dict's shape), so a route needs no
table; an acknowledgement writes its audit entry and event in its own transaction."""

from typing import Any, Dict, List, Optional, Tuple

from sqlalchemy import func, select, update
from sqlalchemy.engine import Engine

from fleet_api.alerts.rules import alert_dict, emit
from fleet_api.audit import record
from fleet_api.auth import Principal
from fleet_api.db import alerts, events, utcnow
from fleet_api.errors import FleetError

# The most event rows one poll of the stream hands back.
EVENT_BATCH = 500


class NoAlert(FleetError, LookupError):
    """No such alert."""


def list_alerts(engine: Engine, status: str, device_id: Optional[str],
                category: Optional[str], limit: int) -> Tuple[List[Dict[str, Any]], int]:
    """The newest `limit` alerts matching the filters, and how many match in all;
    status "all" filters nothing."""
    query = select(alerts).order_by(alerts.c.id.desc()).limit(limit)
    count_q = select(func.count()).select_from(alerts)
    for column, value in ((alerts.c.status, None if status == "all" else status),
                          (alerts.c.device_id, device_id), (alerts.c.category, category)):
        if value is not None:
            query = query.where(column == value)
            count_q = count_q.where(column == value)
    with engine.connect() as conn:
        rows = conn.execute(query).fetchall()
        total = int(conn.execute(count_q).scalar_one())
    return [alert_dict(r) for r in rows], total


def get_alert(engine: Engine, alert_id: int) -> Dict[str, Any]:
    with engine.connect() as conn:
        row = conn.execute(select(alerts).where(alerts.c.id == alert_id)).first()
    if row is None:
        raise NoAlert(f"no alert {alert_id}")
    return alert_dict(row)


def acknowledge(engine: Engine, who: Principal, alert_id: int) -> Dict[str, Any]:
    """The alert, acknowledged by `who` unless someone already did: only the first
    acknowledgement is audited and emitted, a repeat answers the alert as it is."""
    with engine.begin() as conn:
        done = conn.execute(update(alerts).where(alerts.c.id == alert_id,
                                                 alerts.c.acked_at.is_(None))
                            .values(acked_by=who.name or f"#{who.token_id}", acked_at=utcnow()))
        row = conn.execute(select(alerts).where(alerts.c.id == alert_id)).first()
        if row is None:
            raise NoAlert(f"no alert {alert_id}")
        alert = alert_dict(row)
        if done.rowcount:
            record(conn, who, "alert.ack", f"alert:{alert_id}", {"device_id": row.device_id})
            emit(conn, "alert.acknowledged", alert)
    return alert


def newest_event_id(engine: Engine) -> int:
    """Where a stream without Last-Event-ID starts: after every event so far (0: none)."""
    with engine.connect() as conn:
        return int(conn.execute(select(func.max(events.c.id))).scalar() or 0)


def events_after(engine: Engine, last: int) -> List[Dict[str, Any]]:
    """The next events after id `last`, oldest first, as {"id", "kind", "data"}."""
    with engine.connect() as conn:
        rows = conn.execute(select(events.c.id, events.c.kind, events.c.data)
                            .where(events.c.id > last)
                            .order_by(events.c.id).limit(EVENT_BATCH))
        return [{"id": r.id, "kind": r.kind, "data": r.data} for r in rows]
