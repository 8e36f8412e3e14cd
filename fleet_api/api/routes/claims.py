"""Claims over HTTP (the service is fleet_api/devices/claims.py).

`POST /api/v1/claims/batch` pre-registers N devices: each gets MQTT credentials and a
claim code, and stays unclaimed until it claims its registration. A technician may
claim over HTTP (`POST /api/v1/claims/{code}`, e.g. from a phone that scanned the label).
`POST /api/v1/claims` issues a code for a box registered online (already claimed), so
every enclosure label carries one.
"""

from typing import Annotated, Any, List, Literal, Optional

from fastapi import APIRouter, HTTPException, Path, Query, Response
from pydantic import BaseModel, Field, field_validator

from fleet_api.api.limits import RequestBody
from fleet_api.api.schemas import MqttCredentials, Tag
from fleet_api.db import iso
from fleet_api.deps import Offset, ServicesDep, Technician, Viewer
from fleet_api.devices import claims as service
from fleet_api.devices.claims import MAX_BATCH
from simpul_wire.topics import reserved_device_id

router = APIRouter(prefix="/api/v1/claims", tags=["claims"])

# What a person types or a scanner reads: the code, perhaps with spaces or dashes.
ClaimCode = Annotated[str, Path(min_length=1, max_length=64)]


class Details(RequestBody):

    site: Optional[str] = Field(default=None, min_length=1, max_length=200)
    district: Optional[str] = Field(default=None, min_length=1, max_length=100)
    lat: Optional[float] = Field(default=None, ge=-90, le=90)
    lon: Optional[float] = Field(default=None, ge=-180, le=180)


class BatchCreate(RequestBody):

    count: int = Field(ge=1, le=MAX_BATCH)
    kind: Literal["wifi", "cctv", "sensor"]
    district: str = Field(default="unassigned", min_length=1, max_length=100)
    prefix: str = Field(default="box", pattern=r"^[a-z][a-z0-9-]{0,40}$")
    tags: List[Tag] = Field(default_factory=list, max_length=31)  # and "unclaimed"

    @field_validator("prefix")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        reserved = reserved_device_id(f"{value}-x")
        if reserved:
            raise ValueError(reserved)
        return value


class Unclaimed(BaseModel):
    device_id: str
    claim_code: str
    mqtt: MqttCredentials


class BatchCreated(BaseModel):
    data: List[Unclaimed]
    count: int


class ClaimIssue(RequestBody):

    device_id: str = Field(min_length=2, max_length=63)


class ClaimPublic(BaseModel):
    claim_code: str
    device_id: str
    claimed: bool
    claimed_at: Optional[str]
    claimed_via: Optional[str]
    site: Optional[str]
    district: Optional[str]
    lat: Optional[float]
    lon: Optional[float]


class ClaimList(BaseModel):
    data: List[ClaimPublic]
    count: int


def _public(row: Any) -> ClaimPublic:
    return ClaimPublic(claim_code=row.claim_code, device_id=row.device_id,
                       claimed=row.claimed_at is not None, claimed_at=iso(row.claimed_at),
                       claimed_via=row.claimed_via, site=row.site, district=row.district,
                       lat=row.lat, lon=row.lon)


def _wait_for_broker(services: ServicesDep) -> None:
    if services.accounts is not None:
        ticket = services.accounts.request()
        if not services.accounts.wait(ticket, timeout=15):
            raise HTTPException(503, "registered, but the broker did not take the accounts yet")


@router.post("/batch", status_code=201, response_model=BatchCreated)
def pre_register(body: BatchCreate, services: ServicesDep, who: Technician) -> BatchCreated:
    try:
        made = service.pre_register(services.engine, who, body.count, body.kind,
                                    body.district, body.prefix, body.tags)
    except service.CodeTaken as exc:
        raise HTTPException(409, str(exc)) from exc
    _wait_for_broker(services)
    url = services.settings.device_url()
    data = [Unclaimed(device_id=m.device_id, claim_code=m.claim_code, mqtt=MqttCredentials(
        url=url, username=m.device_id, password=m.password, client_id=m.device_id))
        for m in made]
    return BatchCreated(data=data, count=len(data))


@router.post("", status_code=201, response_model=ClaimPublic)
def issue(body: ClaimIssue, services: ServicesDep, who: Technician, response: Response
          ) -> ClaimPublic:
    """A code for a box registered online: claimed at once, with its registered site.
    A device that has a code already gets that one back (200)."""
    try:
        row, made = service.issue(services.engine, who, body.device_id)
    except LookupError as exc:
        raise HTTPException(404, f"no device {body.device_id}") from exc
    if not made:
        response.status_code = 200
    return _public(row)


@router.get("", response_model=ClaimList)
def list_claims(services: ServicesDep, _who: Viewer, claimed: Optional[bool] = None,
                limit: int = Query(1000, ge=1, le=10000), offset: Offset = 0) -> ClaimList:
    rows = service.listing(services.engine, claimed, limit, offset)
    return ClaimList(data=[_public(r) for r in rows], count=len(rows))


@router.get("/{code}", response_model=ClaimPublic)
def get_claim(code: ClaimCode, services: ServicesDep, _who: Viewer) -> ClaimPublic:
    row = service.find(services.engine, code)
    if row is None:
        raise HTTPException(404, "no such claim code")
    return _public(row)


@router.post("/{code}", response_model=ClaimPublic)
def claim_over_http(code: ClaimCode, body: Details, services: ServicesDep, who: Technician
                    ) -> ClaimPublic:
    row = service.claim_by_person(services.engine, who, code,
                                  body.model_dump(exclude_none=True))
    if row is None:
        raise HTTPException(404, "no such claim code")
    return _public(row)
