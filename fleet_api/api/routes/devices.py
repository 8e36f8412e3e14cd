"""Devices: registry, presence and telemetry."""

import json
import math
from datetime import datetime, timedelta
from typing import Any, Dict, List, Literal, Optional

from fastapi import APIRouter, HTTPException, Query, Response
from pydantic import BaseModel, Field
from pydantic_core import to_json
from sqlalchemy import Text, cast, func, select
from sqlalchemy.exc import IntegrityError

from fleet_api.api.schemas import DeviceCreate, Kind, MqttCredentials
from fleet_api.audit import record
from fleet_api.broker.accounts import mosquitto_hash, new_password
from fleet_api.db import devices, iso, records, to_naive_utc, utcnow
from fleet_api.deps import DeviceId, Offset, ServicesDep, StorableTime, Technician, Viewer
from fleet_api.devices.revoke import is_pending
from fleet_api.ingest.presence import ingest_alive

router = APIRouter(prefix="/api/v1/devices", tags=["devices"])

class DevicePublic(BaseModel):
    device_id: str
    site: str
    kind: str
    district: str
    lat: float
    lon: float
    tags: List[str]
    state: Literal["online", "offline", "unknown"]
    online: bool
    last_seen: Optional[str]
    tier_mbps: Optional[float]
    tier_applied_mbps: Optional[float]
    rejected_count: int
    created_at: Optional[str]
    agent_version: Optional[str] = None
    clone_suspected_at: Optional[str] = Field(
        default=None, description="set when two boxes seem to share this identity")
    ntp_synced: Optional[bool] = Field(
        default=None, description="the box's last report: its clock is NTP-synced "
                                  "(null: it cannot tell, or has not said)")
    rotation: Optional[str] = Field(
        default=None, description="a credential rotation under way: staging or switched; "
                                  "done once the box is back with its new password")


class DeviceView(DevicePublic):
    """One device on its own: the list's view, and whether a deregistration is pending."""

    deregistration: Optional[Literal["pending"]] = Field(
        default=None, description="DELETE was asked while the broker could not be reached: "
                                  "the box is locked out, the fleet finishes it later")


class DeviceRegistered(BaseModel):
    device: DevicePublic
    mqtt: MqttCredentials


class DeviceList(BaseModel):
    data: List[DevicePublic]
    count: int


class TelemetryRecord(BaseModel):
    seq: int
    epoch: str
    stream: str
    ts: str
    received_at: str
    metrics: Dict[str, float]
    sources: Dict[str, Any]
    gap_to: Optional[int] = None


class TelemetryList(BaseModel):
    data: List[TelemetryRecord]
    count: int


# What a device view needs: not the desired and reported config (JSON, often large),
# whose decoding was most of a device-list page's time.
PUBLIC_COLUMNS = [devices.c[name] for name in (
    "device_id", "site", "kind", "district", "lat", "lon", "tags", "state", "last_seen",
    "tier_mbps", "tier_applied_mbps", "rejected_count", "created_at", "agent_version",
    "clone_suspected_at", "rotation_state", "ntp_synced")]


def _public_dict(row: Any, now: datetime, timeout_s: float, alive: bool) -> Dict[str, Any]:
    """One device's view: the list page's builder on one row (any row with the public
    columns), so the single view and the list cannot drift apart."""
    return _page([tuple(getattr(row, c.name) for c in PUBLIC_COLUMNS)], now, timeout_s,
                 alive)[0]


def _public(row: Any, now: datetime, timeout_s: float, alive: bool) -> DevicePublic:
    return DevicePublic(**_public_dict(row, now, timeout_s, alive))


_UTC_SUFFIX = "+00:00"


def _page(rows: Any, now: datetime, timeout_s: float, alive: bool) -> List[Dict[str, Any]]:
    """The public view of a page of rows (PUBLIC_COLUMNS, in order) as plain dicts, by
    position: a thousand rows a request made attribute access and per-row calls the
    larger part of the page's time. Presence as `presence.presence` decides it (the
    test pins the two equal)."""
    names = [str(c.name) for c in PUBLIC_COLUMNS]  # not quoted_name: to_json is slow on it
    i_state, i_seen = names.index("state"), names.index("last_seen")
    stale_before = now - timedelta(seconds=timeout_s)
    out = []
    for t in rows:
        values = dict(zip(names, t))
        seen = t[i_seen]
        if not alive:
            state, online = "unknown", False
        elif t[i_state] == "online":
            online = seen is not None and seen >= stale_before
            state = "online" if online else "offline"
        else:
            state, online = t[i_state], False
        values["state"], values["online"] = state, online
        values["tags"] = values["tags"] or []
        values["rotation"] = values.pop("rotation_state")
        for key in ("last_seen", "created_at", "clone_suspected_at"):
            if values[key] is not None:
                values[key] = values[key].isoformat() + _UTC_SUFFIX
        out.append(values)
    return out


@router.get("", response_model=DeviceList)
def list_devices(services: ServicesDep, _who: Viewer,
                 limit: int = Query(1000, ge=1, le=10000), offset: Offset = 0,
                 district: Optional[str] = Query(None, max_length=100),
                 kind: Optional[Kind] = None,
                 status: Optional[Literal["online", "offline", "unknown"]] = None,
                 tier: Optional[float] = Query(None, gt=0, le=10000, allow_inf_nan=False)
                 ) -> Response:
    query = select(*PUBLIC_COLUMNS).order_by(devices.c.device_id)
    count_q = select(func.count()).select_from(devices)
    for column, value in ((devices.c.district, district), (devices.c.kind, kind),
                          (devices.c.tier_mbps, tier)):
        if value is not None:
            query = query.where(column == value)
            count_q = count_q.where(column == value)
    now = utcnow()
    timeout = services.settings.heartbeat_timeout_s
    with services.engine.connect() as conn:
        alive = ingest_alive(conn, now)
        if status is None:
            total = int(conn.execute(count_q).scalar_one())
            rows = conn.execute(query.limit(limit).offset(offset)).fetchall()
            return _json({"data": _page(rows, now, timeout, alive), "count": total})
        # Presence depends on time and ingest health, so filter after computing it.
        every = _page(conn.execute(query).fetchall(), now, timeout, alive)
    matching = [d for d in every if d["state"] == status]
    return _json({"data": matching[offset:offset + limit], "count": len(matching)})


def _json(body: Dict[str, Any]) -> Response:
    return Response(to_json(body), media_type="application/json")


@router.post("", status_code=201, response_model=DeviceRegistered)
def register_device(body: DeviceCreate, services: ServicesDep, who: Technician
                    ) -> DeviceRegistered:
    password = new_password()
    now = utcnow()
    try:
        with services.engine.begin() as conn:
            conn.execute(devices.insert().values(
                device_id=body.device_id, site=body.site, kind=body.kind,
                district=body.district, lat=body.lat, lon=body.lon, tags=body.tags,
                password_hash=mosquitto_hash(password), created_at=now, state="unknown",
                desired={}, desired_version=0, reported={}, rejected_count=0))
            record(conn, who, "device.register", body.device_id,
                   {"site": body.site, "kind": body.kind, "district": body.district})
    except IntegrityError as exc:
        raise HTTPException(409, f"device {body.device_id} is already registered") from exc
    if services.accounts is not None:
        ticket = services.accounts.request()
        if not services.accounts.wait(ticket, timeout=15):
            raise HTTPException(503, "registered, but the broker did not take the account yet")
    with services.engine.connect() as conn:
        row = conn.execute(select(devices).where(devices.c.device_id == body.device_id)).one()
        alive = ingest_alive(conn, now)
    return DeviceRegistered(
        device=_public(row, now, services.settings.heartbeat_timeout_s, alive),
        mqtt=MqttCredentials(url=services.settings.device_url(), username=body.device_id,
                             password=password, client_id=body.device_id),
    )


@router.get("/{device_id}", response_model=DeviceView)
def get_device(device_id: DeviceId, services: ServicesDep, _who: Viewer) -> DeviceView:
    now = utcnow()
    with services.engine.connect() as conn:
        row = conn.execute(select(devices).where(devices.c.device_id == device_id)).first()
        alive = ingest_alive(conn, now)
        pending = row is not None and is_pending(conn, device_id)
    if row is None:
        raise HTTPException(404, f"no device {device_id}")
    return DeviceView(**_public_dict(row, now, services.settings.heartbeat_timeout_s, alive),
                      deregistration="pending" if pending else None)


def finite_json(stored: Optional[str]) -> bytes:
    """Stored JSON text as it is, unless an older fleet wrote NaN or Infinity into it
    (SQLite kept them; no JSON reader takes them): then without those values."""
    text = stored or "{}"
    if "NaN" not in text and "Infinity" not in text:  # the common case: a substring test
        return text.encode()
    value = json.loads(text)
    if isinstance(value, dict):
        value = {k: v for k, v in value.items()
                 if not (isinstance(v, float) and not math.isfinite(v))}
    return to_json(value, inf_nan_mode="null")


@router.get("/{device_id}/telemetry", response_model=TelemetryList)
def get_telemetry(device_id: DeviceId, services: ServicesDep, _who: Viewer, response: Response,
                  since: Optional[StorableTime] = None, until: Optional[StorableTime] = None,
                  stream: str = Query("telemetry", pattern=r"^[a-z][a-z0-9_]{0,31}$"),
                  limit: int = Query(1000, ge=1, le=10000),
                  by: Literal["ts", "received_at"] = Query(
                      "ts", description="filter and order on the box's time (ts) or the "
                                        "fleet's receive time, for a box whose clock was "
                                        "wrong")) -> Response:
    # metrics and sources leave the database as the JSON text they were stored as and go
    # into the page as they are: decoding and encoding them again was most of the time.
    query = select(records.c.seq, records.c.epoch, records.c.stream, records.c.ts,
                   records.c.received_at, cast(records.c.metrics, Text),
                   cast(records.c.sources, Text), records.c.gap_to).where(
        records.c.device_id == device_id, records.c.stream == stream)
    when = records.c.received_at if by == "received_at" else records.c.ts
    if since is not None:
        query = query.where(when >= to_naive_utc(since))
    if until is not None:
        query = query.where(when < to_naive_utc(until))
    with services.engine.connect() as conn:
        exists = conn.execute(select(devices.c.device_id)
                              .where(devices.c.device_id == device_id)).first()
        if exists is None:
            raise HTTPException(404, f"no device {device_id}")
        rows = conn.execute(query.order_by(when, records.c.seq).limit(limit)).fetchall()
    parts = []
    for seq, epoch, stream_, ts, received, metrics, sources, gap in rows:
        head = to_json({"seq": seq, "epoch": epoch, "stream": stream_, "ts": iso(ts) or "",
                        "received_at": iso(received) or "", "gap_to": gap})
        parts.append(b"".join((head[:-1], b',"metrics":', finite_json(metrics),
                               b',"sources":', finite_json(sources), b"}")))
    body = b"".join((b'{"data":[', b",".join(parts), b'],"count":', str(len(parts)).encode(),
                     b"}"))
    return Response(body, media_type="application/json")
