"""Alerts, acknowledgement, the live event stream (SSE) and webhooks."""

import asyncio
import json
import re
import secrets
from typing import Annotated, Any, AsyncIterator, Dict, List, Literal, Optional

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, HttpUrl
from sqlalchemy import func, select, update

from fleet_api.alerts.rules import CATEGORIES, alert_dict, emit
from fleet_api.api.limits import RequestBody
from fleet_api.audit import record
from fleet_api.db import alerts, deliveries, events, inserted_id, iso, utcnow, webhooks
from fleet_api.deps import Admin, Operator, RowId, ServicesDep, Viewer

router = APIRouter(prefix="/api/v1", tags=["alerts"])


class Alert(BaseModel):
    id: int
    device_id: str
    rule: str
    subject: str
    category: str
    severity: str
    status: str
    message: str
    value: Optional[float]
    count: int
    opened_at: Optional[str]
    last_seen_at: Optional[str]
    resolved_at: Optional[str]
    acked_by: Optional[str]
    acked_at: Optional[str]


class AlertList(BaseModel):
    data: List[Alert]
    count: int


def _short_url(url: HttpUrl) -> HttpUrl:
    if len(str(url)) > 500:
        raise ValueError("a webhook URL has at most 500 characters")
    return url


class WebhookCreate(RequestBody):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"name": "BPBD", "url": "https://bpbd.example.go.id/simpul", "categories": ["flood"]}]})

    name: str = Field(min_length=1, max_length=100)
    url: Annotated[HttpUrl, AfterValidator(_short_url)]
    categories: List[Literal["device", "air", "flood", "*"]] = Field(min_length=1,
                                                                     max_length=4)
    secret: Optional[str] = Field(default=None, min_length=16, max_length=200,
                                  description="made for you when left out; shown once")


class Webhook(BaseModel):
    id: int
    name: str
    url: str
    categories: List[str]
    active: bool
    created_at: Optional[str]


class WebhookCreated(Webhook):
    secret: str


class Delivery(BaseModel):
    id: int
    event_id: int
    status: str
    attempts: int
    last_error: Optional[str]
    next_at: Optional[str]


@router.get("/alerts", response_model=AlertList)
def list_alerts(services: ServicesDep, _who: Viewer,
                status: Literal["open", "resolved", "all"] = "open",
                device_id: Optional[str] = Query(None, max_length=63),
                category: Optional[Literal["device", "air", "flood"]] = None,
                limit: int = Query(500, ge=1, le=5000)) -> AlertList:
    query = select(alerts).order_by(alerts.c.id.desc()).limit(limit)
    count_q = select(func.count()).select_from(alerts)
    for column, value in ((alerts.c.status, None if status == "all" else status),
                          (alerts.c.device_id, device_id), (alerts.c.category, category)):
        if value is not None:
            query = query.where(column == value)
            count_q = count_q.where(column == value)
    with services.engine.connect() as conn:
        rows = conn.execute(query).fetchall()
        total = int(conn.execute(count_q).scalar_one())
    return AlertList(data=[Alert(**alert_dict(r)) for r in rows], count=total)


@router.get("/alerts/{alert_id}", response_model=Alert)
def get_alert(alert_id: RowId, services: ServicesDep, _who: Viewer) -> Alert:
    with services.engine.connect() as conn:
        row = conn.execute(select(alerts).where(alerts.c.id == alert_id)).first()
    if row is None:
        raise HTTPException(404, f"no alert {alert_id}")
    return Alert(**alert_dict(row))


@router.post("/alerts/{alert_id}/ack", response_model=Alert)
def ack_alert(alert_id: RowId, services: ServicesDep, who: Operator) -> Alert:
    with services.engine.begin() as conn:
        done = conn.execute(update(alerts).where(alerts.c.id == alert_id,
                                                 alerts.c.acked_at.is_(None))
                            .values(acked_by=who.name or f"#{who.token_id}", acked_at=utcnow()))
        row = conn.execute(select(alerts).where(alerts.c.id == alert_id)).first()
        if row is None:
            raise HTTPException(404, f"no alert {alert_id}")
        if done.rowcount:
            record(conn, who, "alert.ack", f"alert:{alert_id}", {"device_id": row.device_id})
            emit(conn, "alert.acknowledged", alert_dict(row))
    return Alert(**alert_dict(row))


@router.get("/events", response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}},
                             "description": "alert.opened / alert.resolved / "
                                            "alert.acknowledged events"}})
async def event_stream(request: Request, services: ServicesDep, _who: Viewer
                       ) -> StreamingResponse:
    """Server-Sent Events. Resumes after `Last-Event-ID` when the browser reconnects."""
    header = request.headers.get("last-event-id", "")

    def newest() -> int:
        with services.engine.connect() as conn:
            return int(conn.execute(select(func.max(events.c.id))).scalar() or 0)

    def after(last: int) -> List[Any]:
        with services.engine.connect() as conn:
            return list(conn.execute(select(events).where(events.c.id > last)
                                     .order_by(events.c.id).limit(500)))

    # ASCII digits within 64 bits only: isdigit() takes "²" and any length.
    last = int(header) if re.fullmatch(r"[0-9]{1,18}", header) else \
        await asyncio.to_thread(newest)

    async def stream() -> AsyncIterator[str]:
        nonlocal last
        yield ": connected\n\n"
        idle = 0.0
        while not await request.is_disconnected():
            rows = await asyncio.to_thread(after, last)
            for row in rows:
                last = row.id
                yield f"id: {row.id}\nevent: {row.kind}\ndata: {json.dumps(row.data)}\n\n"
            if not rows:
                await asyncio.sleep(0.5)
                idle += 0.5
                if idle >= 15:
                    idle = 0.0
                    yield ": keep-alive\n\n"

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"cache-control": "no-cache"})


def _hook(row: Any) -> Dict[str, Any]:
    return {"id": row.id, "name": row.name, "url": row.url, "categories": row.categories,
            "active": row.active, "created_at": iso(row.created_at)}


@router.get("/webhooks", response_model=List[Webhook], tags=["webhooks"])
def list_webhooks(services: ServicesDep, _who: Admin) -> List[Webhook]:
    with services.engine.connect() as conn:
        return [Webhook(**_hook(r)) for r in conn.execute(select(webhooks)
                                                          .order_by(webhooks.c.id))]


@router.post("/webhooks", response_model=WebhookCreated, status_code=201, tags=["webhooks"])
def add_webhook(body: WebhookCreate, services: ServicesDep, who: Admin) -> WebhookCreated:
    """Route alert categories to an agency: flood → BPBD, air → DLH, device → Diskominfo."""
    secret = body.secret or secrets.token_urlsafe(32)
    with services.engine.begin() as conn:
        new_id = inserted_id(conn.execute(webhooks.insert().values(
            name=body.name, url=str(body.url), secret=secret, categories=body.categories,
            active=True, created_at=utcnow())))
        row = conn.execute(select(webhooks).where(webhooks.c.id == new_id)).one()
        record(conn, who, "webhook.create", f"webhook:{new_id}",
               {"url": str(body.url), "categories": body.categories})
    return WebhookCreated(**_hook(row), secret=secret)


@router.delete("/webhooks/{webhook_id}", status_code=204, tags=["webhooks"])
def delete_webhook(webhook_id: RowId, services: ServicesDep, who: Admin) -> None:
    with services.engine.begin() as conn:
        done = conn.execute(update(webhooks).where(webhooks.c.id == webhook_id,
                                                   webhooks.c.active.is_(True))
                            .values(active=False))
        if not done.rowcount:
            raise HTTPException(404, f"no active webhook {webhook_id}")
        conn.execute(update(deliveries).where(deliveries.c.webhook_id == webhook_id,
                                              deliveries.c.status == "pending")
                     .values(status="failed", last_error="webhook deleted"))
        record(conn, who, "webhook.delete", f"webhook:{webhook_id}")


@router.get("/webhooks/{webhook_id}/deliveries", response_model=List[Delivery],
            tags=["webhooks"])
def list_deliveries(webhook_id: RowId, services: ServicesDep, _who: Admin,
                    limit: int = Query(100, ge=1, le=1000)) -> List[Delivery]:
    with services.engine.connect() as conn:
        rows = conn.execute(select(deliveries).where(deliveries.c.webhook_id == webhook_id)
                            .order_by(deliveries.c.id.desc()).limit(limit)).fetchall()
    return [Delivery(id=r.id, event_id=r.event_id, status=r.status, attempts=r.attempts,
                     last_error=r.last_error, next_at=iso(r.next_at)) for r in rows]


__all__ = ["CATEGORIES", "router"]
