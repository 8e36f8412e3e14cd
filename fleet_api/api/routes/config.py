"""The twin: desired and reported config with a version, tiers, and a device's group."""

from typing import Any, Dict, List, Optional

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from fleet_api.api.limits import FreeJson, RequestBody
from fleet_api.audit import record
from fleet_api.broker.publisher import publish_desired
from fleet_api.control import twin
from fleet_api.db import devices, groups, tiers
from fleet_api.deps import DeviceId, Operator, ServicesDep, Viewer

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


def device_row(conn: Connection, device_id: str) -> Any:
    row = conn.execute(select(devices).where(devices.c.device_id == device_id)).first()
    if row is None:
        raise HTTPException(404, f"no device {device_id}")
    return row


def view(conn: Connection, row: Any) -> TwinView:
    return TwinView(
        desired=twin.redact(dict(row.desired or {})),
        effective=twin.redact(twin.effective(conn, row)),
        reported=twin.redact(dict(row.reported or {})), version=row.desired_version,
        published_version=row.published_version, group=row.group_name,
        group_rev=row.group_rev, tier_mbps=row.tier_mbps,
        tier_applied_mbps=row.tier_applied_mbps)


def _twin_errors(exc: Exception) -> HTTPException:
    if isinstance(exc, twin.VersionConflict):
        return HTTPException(409, f"stale version: the config is at version {exc.current}; "
                                  "read it again and reapply your change")
    if isinstance(exc, LookupError):
        return HTTPException(422, str(exc))
    return HTTPException(422, str(exc))


@router.get("/devices/{device_id}/config", response_model=TwinView)
def get_config(device_id: DeviceId, services: ServicesDep, _who: Viewer) -> TwinView:
    with services.engine.connect() as conn:
        return view(conn, device_row(conn, device_id))


@router.put("/devices/{device_id}/config", response_model=TwinView)
def put_config(device_id: DeviceId, body: ConfigPut, services: ServicesDep, who: Operator
               ) -> TwinView:
    try:
        with services.engine.begin() as conn:
            row = device_row(conn, device_id)
            own = twin.keep_secrets(body.desired, dict(row.desired or {}))
            if body.version != row.desired_version:
                raise twin.VersionConflict(row.desired_version)
            version = twin.write(conn, row, body.version, own)
            record(conn, who, "config.put", device_id, {"version": version, "desired": own})
    except (twin.TwinError, twin.VersionConflict) as exc:
        raise _twin_errors(exc) from exc
    publish_desired(services.engine, services.publisher, [device_id])
    with services.engine.connect() as conn:
        return view(conn, device_row(conn, device_id))


@router.put("/devices/{device_id}/tier", response_model=TwinView)
def put_tier(device_id: DeviceId, body: TierPut, services: ServicesDep, who: Operator) -> TwinView:
    """Write `tier` = {down_mbps, up_mbps, per_client_mbps} from the catalogue into the
    device's desired config and bump the version. `tier_applied_mbps` changes only when
    the box reports the tier applied."""
    for _attempt in range(3):
        try:
            with services.engine.begin() as conn:
                row = device_row(conn, device_id)
                own = dict(row.desired or {})
                own["tier"] = twin.tier_section(conn, body.mbps)
                version = twin.write(conn, row, row.desired_version, own)
                record(conn, who, "tier.put", device_id, {"mbps": body.mbps,
                                                          "version": version})
            break
        except twin.VersionConflict:
            continue  # a concurrent writer: read again and reapply
        except (twin.TwinError, LookupError) as exc:
            raise _twin_errors(exc) from exc
    else:
        raise HTTPException(409, "the config kept changing under this write; try again")
    publish_desired(services.engine, services.publisher, [device_id])
    with services.engine.connect() as conn:
        return view(conn, device_row(conn, device_id))


@router.put("/devices/{device_id}/group", response_model=TwinView)
def put_group(device_id: DeviceId, body: GroupPut, services: ServicesDep, who: Operator
              ) -> TwinView:
    """Assign the device to a group (its template, thresholds and rollouts) or to none."""
    try:
        with services.engine.begin() as conn:
            row = device_row(conn, device_id)
            rev = None
            if body.group is not None:
                grp = conn.execute(select(groups.c.rev).where(groups.c.name == body.group)
                                   ).first()
                if grp is None:
                    raise HTTPException(404, f"no group {body.group}")
                rev = grp[0]
            twin.write(conn, row, row.desired_version, dict(row.desired or {}),
                       group=body.group, rev=rev)
            record(conn, who, "device.group", device_id, {"group": body.group})
    except (twin.TwinError, twin.VersionConflict) as exc:
        raise _twin_errors(exc) from exc
    publish_desired(services.engine, services.publisher, [device_id])
    with services.engine.connect() as conn:
        return view(conn, device_row(conn, device_id))


@router.get("/tiers", response_model=List[Tier], tags=["tiers"])
def list_tiers(services: ServicesDep, _who: Viewer) -> List[Tier]:
    with services.engine.connect() as conn:
        rows = conn.execute(select(tiers).order_by(tiers.c.mbps)).fetchall()
    return [Tier(mbps=r.mbps, down_mbps=r.down_mbps, up_mbps=r.up_mbps,
                 per_client_mbps=r.per_client_mbps, name=r.name) for r in rows]


@router.post("/tiers", response_model=Tier, status_code=201, tags=["tiers"])
def add_tier(body: Tier, services: ServicesDep, who: Operator) -> Tier:
    try:
        with services.engine.begin() as conn:
            conn.execute(tiers.insert().values(**body.model_dump()))
            record(conn, who, "tier.add", f"{body.mbps:g}", body.model_dump())
    except IntegrityError as exc:
        raise HTTPException(409, f"a tier of {body.mbps:g} Mbps exists") from exc
    return body
