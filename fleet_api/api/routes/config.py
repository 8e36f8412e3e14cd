"""The twin: desired and reported config with a version, tiers, and a device's group."""

from typing import Any, Dict, List, Optional

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, ConfigDict, Field

from fleet_api.api.limits import FreeJson, RequestBody
from fleet_api.broker.publisher import publish_desired
from fleet_api.control import device_config as svc
from fleet_api.control import twin
from fleet_api.deps import DeviceId, Operator, ServicesDep, Viewer
from fleet_api.devices.registry import NoDevice

router = APIRouter(prefix="/api/v1", tags=["config"])

CONFIG_EXAMPLE: Dict[str, Any] = {"publish": {"sample_interval_s": 10},
                  "tier": {"down_mbps": 300, "up_mbps": 100, "per_client_mbps": 10}}


class TwinView(BaseModel):
    desired: Dict[str, Any] = Field(description="the device's own part, secrets redacted")
    effective: Dict[str, Any] = Field(description="group template merged with `desired`: "
                                                  "what the box is sent")
    reported: Dict[str, Any]
    version: int
    published_version: int
    group: Optional[str]
    group_rev: Optional[int]
    tier_mbps: Optional[float]
    tier_applied_mbps: Optional[float]


class ConfigPut(RequestBody):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"desired": CONFIG_EXAMPLE, "version": 3}]})

    desired: FreeJson
    version: int = Field(ge=0, le=2**31 - 1, description="the version the writer read")


class TierPut(RequestBody):
    model_config = ConfigDict(json_schema_extra={"examples": [{"mbps": 300}]})

    mbps: float = Field(gt=0, le=10000)


class GroupPut(RequestBody):
    model_config = ConfigDict(json_schema_extra={"examples": [{"group": "kota-barat"}]})

    group: Optional[str] = Field(default=None, min_length=1, max_length=100)


class Tier(RequestBody):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"mbps": 500, "down_mbps": 500, "up_mbps": 150, "per_client_mbps": 15,
         "name": "500 Mbps"}]})

    mbps: float = Field(gt=0, le=10000)
    down_mbps: float = Field(gt=0, le=10000)
    up_mbps: float = Field(gt=0, le=10000)
    per_client_mbps: Optional[float] = Field(default=None, gt=0, le=10000)
    name: str = Field(default="", max_length=100)


def _view(services: ServicesDep, device_id: str) -> TwinView:
    with services.engine.connect() as conn:
        row = svc.device_row(conn, device_id)
        return TwinView(
            desired=twin.redact(dict(row.desired or {})),
            effective=twin.redact(twin.effective(conn, row)),
            reported=twin.redact(dict(row.reported or {})), version=row.desired_version,
            published_version=row.published_version, group=row.group_name,
            group_rev=row.group_rev, tier_mbps=row.tier_mbps,
            tier_applied_mbps=row.tier_applied_mbps)


def _http(exc: Exception) -> HTTPException:
    if isinstance(exc, (NoDevice, svc.NoGroup)):
        return HTTPException(404, str(exc))
    if isinstance(exc, twin.VersionConflict):
        return HTTPException(409, f"stale version: the config is at version {exc.current}; "
                                  "read it again and reapply your change")
    if isinstance(exc, (svc.KeptChanging, svc.TierExists)):
        return HTTPException(409, str(exc))
    return HTTPException(422, str(exc))  # TwinError, or a tier the catalogue lacks


@router.get("/devices/{device_id}/config", response_model=TwinView)
def get_config(device_id: DeviceId, services: ServicesDep, _who: Viewer) -> TwinView:
    try:
        return _view(services, device_id)
    except NoDevice as exc:
        raise _http(exc) from exc


@router.put("/devices/{device_id}/config", response_model=TwinView)
def put_config(device_id: DeviceId, body: ConfigPut, services: ServicesDep, who: Operator
               ) -> TwinView:
    try:
        svc.put_own(services.engine, who, device_id, body.desired, body.version)
    except (NoDevice, twin.TwinError, twin.VersionConflict) as exc:
        raise _http(exc) from exc
    publish_desired(services.engine, services.publisher, [device_id])
    return _view(services, device_id)


@router.put("/devices/{device_id}/tier", response_model=TwinView)
def put_tier(device_id: DeviceId, body: TierPut, services: ServicesDep, who: Operator) -> TwinView:
    """Write `tier` = {down_mbps, up_mbps, per_client_mbps} from the catalogue into the
    device's desired config and bump the version. `tier_applied_mbps` changes only when
    the box reports the tier applied."""
    try:
        svc.put_tier(services.engine, who, device_id, body.mbps)
    except (NoDevice, svc.KeptChanging, twin.TwinError, LookupError) as exc:
        raise _http(exc) from exc
    publish_desired(services.engine, services.publisher, [device_id])
    return _view(services, device_id)


@router.put("/devices/{device_id}/group", response_model=TwinView)
def put_group(device_id: DeviceId, body: GroupPut, services: ServicesDep, who: Operator
              ) -> TwinView:
    """Assign the device to a group (its template, thresholds and rollouts) or to none."""
    try:
        svc.put_group(services.engine, who, device_id, body.group)
    except (NoDevice, svc.NoGroup, twin.TwinError, twin.VersionConflict) as exc:
        raise _http(exc) from exc
    publish_desired(services.engine, services.publisher, [device_id])
    return _view(services, device_id)


@router.get("/tiers", response_model=List[Tier], tags=["tiers"])
def list_tiers(services: ServicesDep, _who: Viewer) -> List[Tier]:
    return [Tier(mbps=r.mbps, down_mbps=r.down_mbps, up_mbps=r.up_mbps,
                 per_client_mbps=r.per_client_mbps, name=r.name)
            for r in svc.list_tiers(services.engine)]


@router.post("/tiers", response_model=Tier, status_code=201, tags=["tiers"])
def add_tier(body: Tier, services: ServicesDep, who: Operator) -> Tier:
    try:
        svc.add_tier(services.engine, who, body.model_dump())
    except svc.TierExists as exc:
        raise _http(exc) from exc
    return body
