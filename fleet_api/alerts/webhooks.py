"""Webhook delivery: signed with HMAC-SHA256, retried with exponential backoff.

Headers of each POST:
- `X-Simpul-Event`: alert.opened | alert.resolved | alert.acknowledged
- `X-Simpul-Delivery`: the delivery id (a receiver deduplicates on it)
- `X-Simpul-Signature`: `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`
A 2xx answer is success; anything else (or no answer in 5 s) is retried after
`BACKOFF_S * 2**(attempt-1)` seconds, at most `MAX_ATTEMPTS` times, then marked failed.
"""

import hashlib
import hmac
import logging
import time
from datetime import timedelta
from typing import Optional

import httpx
from sqlalchemy import select, update
from sqlalchemy.engine import Engine

from fleet_api.db import deliveries, utcnow, webhooks

log = logging.getLogger("simpul.webhooks")

MAX_ATTEMPTS = 8
BACKOFF_S = 1.0
BACKOFF_MAX_S = 3600.0


def sign(secret: str, body: str, ts: Optional[int] = None) -> str:
    ts = int(time.time()) if ts is None else ts
    mac = hmac.new(secret.encode(), f"{ts}.{body}".encode(), hashlib.sha256).hexdigest()
    return f"t={ts},v1={mac}"


def verify(secret: str, body: str, header: str, tolerance_s: float = 300) -> bool:
    """The receiver's check (used by tests and documented for the agencies)."""
    try:
        parts = dict(p.split("=", 1) for p in header.split(","))
        ts = int(parts["t"])
    except (ValueError, KeyError):
        return False
    if abs(time.time() - ts) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, body, ts), header)


def backoff(attempts: int) -> float:
    return float(min(BACKOFF_MAX_S, BACKOFF_S * 2 ** max(0, attempts - 1)))


def deliver_due(engine: Engine, client: httpx.Client, limit: int = 50) -> int:
    now = utcnow()
    with engine.connect() as conn:
        due = conn.execute(
            select(deliveries, webhooks.c.url, webhooks.c.secret)
            .join(webhooks, webhooks.c.id == deliveries.c.webhook_id)
            .where(deliveries.c.status == "pending", deliveries.c.next_at <= now)
            .order_by(deliveries.c.id).limit(limit)).fetchall()
    sent = 0
    for row in due:
        error = None
        try:
            resp = client.post(row.url, content=row.body, headers={
                "content-type": "application/json",
                "x-simpul-event": _event(row.body), "x-simpul-delivery": str(row.id),
                "x-simpul-signature": sign(row.secret, row.body)})
            if not 200 <= resp.status_code < 300:
                error = f"HTTP {resp.status_code}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        attempts = row.attempts + 1
        values = {"attempts": attempts, "last_error": error}
        if error is None:
            values["status"] = "delivered"
            sent += 1
        elif attempts >= MAX_ATTEMPTS:
            values["status"] = "failed"
            log.error("webhook delivery %d to %s failed for good: %s", row.id, row.url, error)
        else:
            values["next_at"] = utcnow() + timedelta(seconds=backoff(attempts))
            log.warning("webhook delivery %d to %s: %s; retry %d", row.id, row.url, error,
                        attempts)
        with engine.begin() as conn:
            conn.execute(update(deliveries).where(deliveries.c.id == row.id).values(**values))
    return sent


def _event(body: str) -> str:
    import json

    try:
        return str(json.loads(body).get("event", ""))
    except ValueError:
        return ""
