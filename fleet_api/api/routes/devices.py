"""Devices: registry, presence and telemetry."""

from typing import Any, Dict, List, Literal, Optional

from fastapi import APIRouter, HTTPException, Query, Response
from pydantic import BaseModel, Field
from pydantic_core import to_json

from fleet_api.api.schemas import DeviceCreate, Kind, MqttCredentials
from fleet_api.db import utcnow
from fleet_api.deps import DeviceId, Offset, ServicesDep, StorableTime, Technician, Viewer
from fleet_api.devices import telemetry, views
from fleet_api.devices.registry import AlreadyRegistered, NoDevice

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


@router.get("", response_model=DeviceList)
def list_devices(services: ServicesDep, _who: Viewer,
                 limit: int = Query(1000, ge=1, le=10000), offset: Offset = 0,
                 district: Optional[str] = Query(None, max_length=100),
                 kind: Optional[Kind] = None,
                 status: Optional[Literal["online", "offline", "unknown"]] = None,
                 tier: Optional[float] = Query(None, gt=0, le=10000, allow_inf_nan=False)
                 ) -> Response:
    return _json(views.list_page(services.engine, services.settings.heartbeat_timeout_s,
                                 limit, offset, district=district, kind=kind, status=status,
                                 tier=tier))


def _json(body: Dict[str, Any]) -> Response:
    return Response(to_json(body), media_type="application/json")


@router.post("", status_code=201, response_model=DeviceRegistered)
def register_device(body: DeviceCreate, services: ServicesDep, who: Technician
                    ) -> DeviceRegistered:
    now = utcnow()
    try:
        password = views.register(services.engine, who, body.model_dump(), now)
    except AlreadyRegistered as exc:
        raise HTTPException(409, f"device {body.device_id} is already registered") from exc
    if services.accounts is not None:
        ticket = services.accounts.request()
        if not services.accounts.wait(ticket, timeout=15):
            raise HTTPException(503, "registered, but the broker did not take the account yet")
    view = views.registered_view(services.engine, body.device_id, now,
                                 services.settings.heartbeat_timeout_s)
    return DeviceRegistered(
        device=DevicePublic(**view),
        mqtt=MqttCredentials(url=services.settings.device_url(), username=body.device_id,
                             password=password, client_id=body.device_id),
    )


@router.get("/{device_id}", response_model=DeviceView)
def get_device(device_id: DeviceId, services: ServicesDep, _who: Viewer) -> DeviceView:
    try:
        view, pending = views.device_view(services.engine, device_id,
                                          services.settings.heartbeat_timeout_s)
    except NoDevice as exc:
        raise HTTPException(404, str(exc)) from exc
    return DeviceView(**view, deregistration="pending" if pending else None)


@router.get("/{device_id}/telemetry", response_model=TelemetryList)
def get_telemetry(device_id: DeviceId, services: ServicesDep, _who: Viewer, response: Response,
                  since: Optional[StorableTime] = None, until: Optional[StorableTime] = None,
                  stream: str = Query("telemetry", pattern=r"^[a-z][a-z0-9_]{0,31}$"),
                  limit: int = Query(1000, ge=1, le=10000),
                  by: Literal["ts", "received_at"] = Query(
                      "ts", description="filter and order on the box's time (ts) or the "
                                        "fleet's receive time, for a box whose clock was "
                                        "wrong")) -> Response:
    try:
        body = telemetry.telemetry_page(services.engine, device_id, stream, since, until,
                                        limit, by)
    except NoDevice as exc:
        raise HTTPException(404, str(exc)) from exc
    return Response(body, media_type="application/json")
