"""Webhook subscriptions as the API changes them: registering one (its secret made when
the admin gives none), deactivating one with its pending deliveries failed, and the
deliveries it has had. Each change writes its audit entry in the same transaction; the
delivery worker itself is fleet_api/alerts/webhooks.py."""

import secrets
from typing import Any, Dict, List, Optional, Sequence

from sqlalchemy import select, update
from sqlalchemy.engine import Engine

from fleet_api.audit import record
from fleet_api.auth import Principal
from fleet_api.db import deliveries, inserted_id, iso, utcnow, webhooks
from fleet_api.errors import FleetError


class NoWebhook(FleetError, LookupError):
    """No such active webhook."""


def _hook(row: Any) -> Dict[str, Any]:
    """A webhook as the API shows it: never its secret."""
    return {"id": row.id, "name": row.name, "url": row.url, "categories": row.categories,
            "active": row.active, "created_at": iso(row.created_at)}


def list_webhooks(engine: Engine) -> List[Dict[str, Any]]:
    with engine.connect() as conn:
        return [_hook(r) for r in conn.execute(select(webhooks).order_by(webhooks.c.id))]


def register(engine: Engine, who: Principal, name: str, url: str, categories: Sequence[str],
             secret: Optional[str]) -> Dict[str, Any]:
    """A new active webhook for `categories`; the answer carries its secret, the one
    time anyone sees it."""
    secret = secret or secrets.token_urlsafe(32)
    with engine.begin() as conn:
        new_id = inserted_id(conn.execute(webhooks.insert().values(
            name=name, url=url, secret=secret, categories=categories,
            active=True, created_at=utcnow())))
        row = conn.execute(select(webhooks).where(webhooks.c.id == new_id)).one()
        record(conn, who, "webhook.create", f"webhook:{new_id}",
               {"url": url, "categories": categories})
    return {**_hook(row), "secret": secret}


def deactivate(engine: Engine, who: Principal, webhook_id: int) -> None:
    """The webhook stops receiving; its pending deliveries fail rather than go out to
    an agency that was unsubscribed. The row stays for its delivery history."""
    with engine.begin() as conn:
        done = conn.execute(update(webhooks).where(webhooks.c.id == webhook_id,
                                                   webhooks.c.active.is_(True))
                            .values(active=False))
        if not done.rowcount:
            raise NoWebhook(f"no active webhook {webhook_id}")
        conn.execute(update(deliveries).where(deliveries.c.webhook_id == webhook_id,
                                              deliveries.c.status == "pending")
                     .values(status="failed", last_error="webhook deleted"))
        record(conn, who, "webhook.delete", f"webhook:{webhook_id}")


def deliveries_of(engine: Engine, webhook_id: int, limit: int) -> List[Dict[str, Any]]:
    """The webhook's newest `limit` deliveries, newest first (none for an unknown id)."""
    with engine.connect() as conn:
        rows = conn.execute(select(deliveries).where(deliveries.c.webhook_id == webhook_id)
                            .order_by(deliveries.c.id.desc()).limit(limit)).fetchall()
    return [{"id": r.id, "event_id": r.event_id, "status": r.status, "attempts": r.attempts,
             "last_error": r.last_error, "next_at": iso(r.next_at)} for r in rows]
