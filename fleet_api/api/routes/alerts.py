"""Alerts, acknowledgement, the live event stream (SSE) and webhooks."""

import asyncio
import json
import re
from typing import Annotated, AsyncIterator, List, Literal, Optional

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, HttpUrl

from fleet_api.alerts import store, subscriptions
from fleet_api.api.limits import RequestBody
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
    rows, total = store.list_alerts(services.engine, status, device_id, category, limit)
    return AlertList(data=[Alert(**r) for r in rows], count=total)


@router.get("/alerts/{alert_id}", response_model=Alert)
def get_alert(alert_id: RowId, services: ServicesDep, _who: Viewer) -> Alert:
    try:
        return Alert(**store.get_alert(services.engine, alert_id))
    except store.NoAlert as exc:
        raise HTTPException(404, str(exc)) from exc


@router.post("/alerts/{alert_id}/ack", response_model=Alert)
def ack_alert(alert_id: RowId, services: ServicesDep, who: Operator) -> Alert:
    try:
        return Alert(**store.acknowledge(services.engine, who, alert_id))
    except store.NoAlert as exc:
        raise HTTPException(404, str(exc)) from exc


@router.get("/events", response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}},
                             "description": "alert.opened / alert.resolved / "
                                            "alert.acknowledged events"}})
async def event_stream(request: Request, services: ServicesDep, _who: Viewer
                       ) -> StreamingResponse:
    """Server-Sent Events. Resumes after `Last-Event-ID` when the browser reconnects."""
    header = request.headers.get("last-event-id", "")
    # ASCII digits within 64 bits only: isdigit() takes "²" and any length.
    last = int(header) if re.fullmatch(r"[0-9]{1,18}", header) else \
        await asyncio.to_thread(store.newest_event_id, services.engine)

    async def stream() -> AsyncIterator[str]:
        nonlocal last
        yield ": connected\n\n"
        idle = 0.0
        while not await request.is_disconnected():
            rows = await asyncio.to_thread(store.events_after, services.engine, last)
            for row in rows:
                last = row["id"]
                yield (f"id: {row['id']}\nevent: {row['kind']}\n"
                       f"data: {json.dumps(row['data'])}\n\n")
            if not rows:
                await asyncio.sleep(0.5)
                idle += 0.5
                if idle >= 15:
                    idle = 0.0
                    yield ": keep-alive\n\n"

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"cache-control": "no-cache"})


@router.get("/webhooks", response_model=List[Webhook], tags=["webhooks"])
def list_webhooks(services: ServicesDep, _who: Admin) -> List[Webhook]:
    return [Webhook(**h) for h in subscriptions.list_webhooks(services.engine)]


@router.post("/webhooks", response_model=WebhookCreated, status_code=201, tags=["webhooks"])
def add_webhook(body: WebhookCreate, services: ServicesDep, who: Admin) -> WebhookCreated:
    """Route alert categories to an agency: flood → BPBD, air → DLH, device → Diskominfo."""
    return WebhookCreated(**subscriptions.register(
        services.engine, who, body.name, str(body.url), body.categories, body.secret))


@router.delete("/webhooks/{webhook_id}", status_code=204, tags=["webhooks"])
def delete_webhook(webhook_id: RowId, services: ServicesDep, who: Admin) -> None:
    try:
        subscriptions.deactivate(services.engine, who, webhook_id)
    except subscriptions.NoWebhook as exc:
        raise HTTPException(404, str(exc)) from exc


@router.get("/webhooks/{webhook_id}/deliveries", response_model=List[Delivery],
            tags=["webhooks"])
def list_deliveries(webhook_id: RowId, services: ServicesDep, _who: Admin,
                    limit: int = Query(100, ge=1, le=1000)) -> List[Delivery]:
    return [Delivery(**d)
            for d in subscriptions.deliveries_of(services.engine, webhook_id, limit)]


__all__ = ["router"]
