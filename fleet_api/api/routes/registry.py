"""Registry operations beyond one device: deregistration, bulk registration, rejected
payloads, CSV export of telemetry."""

import csv
import io
from typing import Any, Dict, Iterator, List, Literal, Optional

from fastapi import APIRouter, HTTPException, Query, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from fleet_api.api.limits import BULK_BODY_CAP, RequestBody
from fleet_api.api.schemas import DeviceCreate, MqttCredentials
from fleet_api.control import box_commands as cmds
from fleet_api.db import iso
from fleet_api.deps import (
    Admin,
    DeviceId,
    Operator,
    ServicesDep,
    StorableTime,
    Technician,
    Viewer,
)
from fleet_api.devices import registry, rotation
from fleet_api.devices.pki import FleetCA, PkiError
from fleet_api.devices.revoke import deregister_as
from fleet_api.spreadsheet import safe_row

router = APIRouter(prefix="/api/v1/devices", tags=["devices"])


class BulkCreate(RequestBody):
    model_config = ConfigDict(json_schema_extra={"examples": [{"devices": [
        {"device_id": "pos-001", "site": "Pos 1", "kind": "wifi", "district": "Kota Barat",
         "lat": -6.2, "lon": 106.8}]}]})

    devices: List[DeviceCreate] = Field(min_length=1, max_length=10000)


class BulkItem(BaseModel):
    device_id: str
    mqtt: MqttCredentials


class BulkRegistered(BaseModel):
    data: List[BulkItem]
    count: int


class Reject(BaseModel):
    id: int
    topic: str
    reason: str
    received_at: Optional[str]


class RejectList(BaseModel):
    data: List[Reject]
    count: int
    rejected_count: int


@router.post("/bulk", status_code=201, response_model=BulkRegistered,
             max_body_size=BULK_BODY_CAP)  # 10,000 devices (fleet_api/api/limits.py)
def register_bulk(body: BulkCreate, services: ServicesDep, who: Technician) -> BulkRegistered:
    """Register thousands at once: one transaction, one broker reload. Credentials are
    in the response, once."""
    ids = [d.device_id for d in body.devices]
    try:
        passwords = registry.register_many(services.engine, who,
                                           [d.model_dump() for d in body.devices])
    except registry.Duplicated as exc:
        raise HTTPException(422, str(exc)) from exc
    except registry.AlreadyRegistered as exc:
        raise HTTPException(409, str(exc)) from exc
    if services.accounts is not None and \
            not services.accounts.wait(services.accounts.request(), timeout=30):
        raise HTTPException(503, "registered, but the broker did not take the accounts yet")
    url = services.settings.device_url()
    data = [BulkItem(device_id=i, mqtt=MqttCredentials(url=url, username=i,
                                                       password=passwords[i], client_id=i))
            for i in ids]
    return BulkRegistered(data=data, count=len(data))


class DeregistrationPending(BaseModel):
    device_id: str
    deregistration: Literal["pending"]
    detail: str


@router.delete("/{device_id}", status_code=204, response_class=Response, responses={
    202: {"model": DeregistrationPending,
          "description": "the broker could not be reached: the box is locked out and the "
                         "fleet finishes the deregistration when the broker answers"}})
def delete_device(device_id: DeviceId, services: ServicesDep, who: Admin) -> Response:
    """Deregister: the broker refuses the device from now on, and its live connection is
    dropped. Stored telemetry stays. While the broker cannot be reached the answer is
    202 and the device shows `deregistration: pending` until the fleet has finished."""
    try:
        gone = deregister_as(services.engine, services.broker_side(), who, device_id)
    except registry.NoDevice as exc:
        raise HTTPException(404, str(exc)) from exc
    if gone:
        return Response(status_code=204)
    body = DeregistrationPending(
        device_id=device_id, deregistration="pending",
        detail="the broker could not be reached; the box is locked out at its next reload "
               "and the fleet finishes the deregistration when it answers")
    return JSONResponse(body.model_dump(), status_code=202)


@router.get("/{device_id}/rejects", response_model=RejectList)
def list_rejects(device_id: DeviceId, services: ServicesDep, _who: Viewer,
                 limit: int = Query(100, ge=1, le=1000)) -> RejectList:
    """Payloads of this device the ingest refused, newest first, with the reason."""
    found = registry.rejects_of(services.engine, device_id, limit)
    if found is None:
        raise HTTPException(404, f"no device {device_id}")
    rejected_count, rows = found
    data = [Reject(id=r.id, topic=r.topic, reason=r.reason, received_at=iso(r.received_at))
            for r in rows]
    return RejectList(data=data, count=len(data), rejected_count=rejected_count)


@router.get("/{device_id}/telemetry.csv", response_class=StreamingResponse,
            responses={200: {"content": {"text/csv": {}}}})
def telemetry_csv(device_id: DeviceId, services: ServicesDep, _who: Viewer,
                  since: Optional[StorableTime] = None, until: Optional[StorableTime] = None,
                  stream: str = Query("telemetry", pattern=r"^[a-z][a-z0-9_]{0,31}$"),
                  limit: int = Query(100000, ge=1, le=1000000)) -> StreamingResponse:
    """One row per record: ts, received_at, epoch, seq, then one column per metric. Text
    that a spreadsheet would run as a formula starts with a single quote."""
    found = registry.records_for_export(services.engine, device_id, stream, since, until,
                                        limit)
    if found is None:
        raise HTTPException(404, f"no device {device_id}")
    rows = found
    names = sorted({k for r in rows for k in (r.metrics or {})})

    def lines() -> Iterator[str]:
        buf = io.StringIO()
        out = csv.writer(buf)
        out.writerow(safe_row(["ts", "received_at", "epoch", "seq", *names]))
        for i, r in enumerate(rows):
            m: Dict[str, Any] = r.metrics or {}
            out.writerow(safe_row([iso(r.ts), iso(r.received_at), r.epoch, r.seq,
                                   *[m.get(n, "") for n in names]]))
            if i % 1000 == 999:
                yield buf.getvalue()
                buf.seek(0)
                buf.truncate()
        yield buf.getvalue()

    return StreamingResponse(lines(), media_type="text/csv", headers={
        "content-disposition": f'attachment; filename="{device_id}-{stream}.csv"'})


class CertificateRequest(RequestBody):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "csr": "-----BEGIN CERTIFICATE REQUEST-----\n...\n-----END CERTIFICATE REQUEST-----\n"}]})

    csr: str = Field(min_length=1, max_length=16384,
                     description="PEM certificate request for the box's own key")


class CertificateIssued(BaseModel):
    device_id: str
    serial: str
    not_after: Optional[str]
    certificate: str
    ca: str
    url: Optional[str] = Field(description="the broker's TLS listener, mqtts://host:port")


@router.post("/{device_id}/certificate", status_code=201, response_model=CertificateIssued)
def issue_certificate(device_id: DeviceId, body: CertificateRequest, services: ServicesDep,
                      who: Technician) -> CertificateIssued:
    """Sign the box's certificate request with the fleet's CA. The certificate's subject is
    CN=<device id>, whatever the request asked; the broker's TLS listener takes it as the
    username. The box's key never leaves the box."""
    broker_data = services.settings.broker_data
    try:
        issued = registry.certify(services.engine, FleetCA(broker_data) if broker_data else None,
                                  who, device_id, body.csr)
    except registry.NoDevice as exc:
        raise HTTPException(404, str(exc)) from exc
    except registry.NoCA as exc:
        raise HTTPException(409, str(exc)) from exc
    except PkiError as exc:
        raise HTTPException(422, f"certificate request refused: {exc}") from exc
    return CertificateIssued(device_id=device_id, url=services.settings.tls_url(), **issued)


class RotateRequest(RequestBody):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {}, {"only_boot_id": "3f9c0a7be21d4c55"}]})

    only_boot_id: Optional[str] = Field(
        default=None, min_length=1, max_length=32,
        description="of two boxes on a cloned card, the one that keeps the identity")
    reconnect_after_s: float = Field(default=5.0, ge=0, le=3600)


class RotationStarted(BaseModel):
    rotation_id: str
    command_id: str
    state: str


@router.post("/{device_id}/credentials/rotate", status_code=202,
             response_model=RotationStarted)
def rotate_credentials(device_id: DeviceId, services: ServicesDep, who: Operator,
                       body: Optional[RotateRequest] = None) -> RotationStarted:
    """Give the box a new broker password without a lockout window: the box stores it
    beside the old one, then the broker switches, then the old one is dropped once the
    box is back with the new one (docs/identity.md). Follow it on the command's status
    and the device's alerts."""
    body = body or RotateRequest()
    try:
        command = rotation.request(services.engine, who, device_id, body.only_boot_id,
                                   body.reconnect_after_s)
    except LookupError as exc:
        raise HTTPException(404, f"no device {device_id}") from exc
    except rotation.RotationError as exc:
        raise HTTPException(409, str(exc)) from exc
    cmds.publish(services.engine, services.publisher, command)
    return RotationStarted(rotation_id=command["command_id"],
                           command_id=command["command_id"], state="staging")
