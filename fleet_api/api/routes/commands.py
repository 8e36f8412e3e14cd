"""Commands to one device: create, list, status and result, retry."""

from typing import Any, Dict, List, Literal, Optional

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, ConfigDict, Field

from fleet_api.api.limits import FreeJson, RequestBody
from fleet_api.auth import Principal
from fleet_api.control import box_commands as cmds
from fleet_api.control.twin import redact
from fleet_api.db import iso, utcnow
from fleet_api.deps import CommandId, DeviceId, ServicesDep, Technician, Viewer
from fleet_api.devices.rotation import COMMAND as ROTATE

router = APIRouter(prefix="/api/v1/devices", tags=["commands"])

Status = Literal["queued", "delivered", "received", "succeeded", "failed", "expired"]


class CommandCreate(RequestBody):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"name": "self_test", "args": {}, "timeout_s": 300}]})

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")
    args: FreeJson = Field(default_factory=dict)
    timeout_s: float = Field(default=300, ge=1, le=7 * 86400,
                             description="the command expires this long after creation")


class CommandCreated(BaseModel):
    command_id: str
    status: Status


class CommandView(BaseModel):
    command_id: str
    device_id: str
    name: str
    args: Dict[str, Any]
    status: Status
    result: Optional[Dict[str, Any]]
    error: Optional[str]
    created_by: str
    created_at: Optional[str]
    expires_at: Optional[str]
    updated_at: Optional[str]
    retry_of: Optional[str]


class CommandList(BaseModel):
    data: List[CommandView]
    count: int


def _view(row: Any) -> CommandView:
    return CommandView(
        command_id=row.command_id, device_id=row.device_id, name=row.name,
        args=redact(row.args or {}), status=cmds.effective_status(row, utcnow()),  # type: ignore[arg-type]
        result=row.result, error=row.error, created_by=row.created_by,
        created_at=iso(row.created_at), expires_at=iso(row.expires_at),
        updated_at=iso(row.updated_at), retry_of=row.retry_of)


def _may_run(who: Principal, name: str) -> None:
    if name not in cmds.FIELD_COMMANDS and not who.may("operator"):
        raise HTTPException(403, f"the {who.role} role may run only "
                                 f"{', '.join(sorted(cmds.FIELD_COMMANDS))}; "
                                 f"{name} needs operator")


def _send(services: Any, who: Principal, device_id: str, name: str, args: Dict[str, Any],
          timeout_s: float, retry_of: Optional[str] = None) -> CommandCreated:
    _may_run(who, name)
    if name == ROTATE:
        raise HTTPException(409, "credentials are rotated with POST "
                                 f"/api/v1/devices/{device_id}/credentials/rotate, which "
                                 "keeps the broker and the box in step")
    try:
        row = cmds.create_for(services.engine, who, device_id, name, args, timeout_s, retry_of)
    except LookupError as exc:
        raise HTTPException(404, f"no device {device_id}") from exc
    delivered = cmds.publish(services.engine, services.publisher, row)
    return CommandCreated(command_id=row["command_id"],
                          status="delivered" if delivered else "queued")


@router.post("/{device_id}/commands", status_code=201, response_model=CommandCreated)
def create_command(device_id: DeviceId, body: CommandCreate, services: ServicesDep,
                   who: Technician) -> CommandCreated:
    """Publish a command (QoS 1, expiring with the command). Technicians may run
    self-test and diagnostic commands; anything else needs operator."""
    return _send(services, who, device_id, body.name, body.args, body.timeout_s)


@router.get("/{device_id}/commands", response_model=CommandList)
def list_commands(device_id: DeviceId, services: ServicesDep, _who: Viewer,
                  status: Optional[Status] = None,
                  limit: int = Query(100, ge=1, le=1000)) -> CommandList:
    with services.engine.connect() as conn:
        rows = cmds.list_for(conn, device_id, status, limit)
    data = [_view(r) for r in rows]
    return CommandList(data=data, count=len(data))


def _get(services: Any, device_id: str, command_id: str) -> Any:
    row = cmds.find(services.engine, device_id, command_id)
    if row is None:
        raise HTTPException(404, f"no command {command_id} for {device_id}")
    return row


@router.get("/{device_id}/commands/{command_id}", response_model=CommandView)
def get_command(device_id: DeviceId, command_id: CommandId, services: ServicesDep, _who: Viewer
                ) -> CommandView:
    return _view(_get(services, device_id, command_id))


@router.post("/{device_id}/commands/{command_id}/retry", status_code=201,
             response_model=CommandCreated)
def retry_command(device_id: DeviceId, command_id: CommandId, services: ServicesDep, who: Technician
                  ) -> CommandCreated:
    """Send a failed or expired command again, as a new command naming the old one."""
    row = _get(services, device_id, command_id)
    status = cmds.effective_status(row, utcnow())
    if status not in ("failed", "expired"):
        raise HTTPException(409, f"command {command_id} is {status}; only a failed or "
                                 "expired command is retried")
    timeout = max(1.0, (row.expires_at - row.created_at).total_seconds())
    return _send(services, who, device_id, row.name, dict(row.args or {}), timeout,
                 retry_of=command_id)
