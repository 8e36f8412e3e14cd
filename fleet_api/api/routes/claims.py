"""Claims: boxes registered in the office before anyone knows where they will stand.

`POST /api/v1/claims/batch` pre-registers N devices: each gets MQTT credentials and a
claim code, and stays unclaimed (site "unclaimed", tag "unclaimed") until it claims its
registration. A box claims on its first connection by publishing `claim` (with the site
details the technician gave at install time); a technician may also claim over HTTP
(`POST /api/v1/claims/{code}`, e.g. from a phone that scanned the label).
`POST /api/v1/claims` issues a code for a box registered online (already claimed), so
every enclosure label carries one.

The ingest worker hands each `claim` message to `answer_claim`, which records it and
answers the box on its `ack` leaf (stream "claim", epoch `claim_epoch(code)`), with
`rejected` set when the code is not this device's. Claims are idempotent: a box that
missed the answer claims again and hears the same answer.
"""

import logging
import secrets
from datetime import datetime
from typing import Annotated, Any, Dict, List, Literal, Optional

from fastapi import APIRouter, HTTPException, Path, Query, Response
from pydantic import BaseModel, Field, field_validator
from sqlalchemy import Column, DateTime, Float, String, Table, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from fleet_api.api.limits import RequestBody
from fleet_api.api.routes.devices import MqttCredentials, Tag
from fleet_api.audit import record
from fleet_api.broker.accounts import mosquitto_hash, new_password
from fleet_api.db import devices, iso, metadata, utcnow
from fleet_api.deps import Offset, ServicesDep, Technician, Viewer
from simpul_wire.models import CLAIM_STREAM, Ack, Claim, claim_epoch, encode
from simpul_wire.topics import reserved_device_id, topic

log = logging.getLogger("simpul.claims")

router = APIRouter(prefix="/api/v1/claims", tags=["claims"])

UNCLAIMED = "unclaimed"
# Crockford's base32: no I, L, O, U, so a code read off a label is typed right.
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_ID_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
MAX_BATCH = 1000
# What a person types or a scanner reads: the code, perhaps with spaces or dashes.
ClaimCode = Annotated[str, Path(min_length=1, max_length=64)]

claims = Table(
    "claims", metadata,
    Column("claim_code", String(32), primary_key=True),
    Column("device_id", String(63), nullable=False, unique=True),
    Column("created_at", DateTime, nullable=False),
    Column("claimed_at", DateTime, nullable=True),
    Column("claimed_via", String(16), nullable=True),
    Column("site", String(200), nullable=True),
    Column("district", String(100), nullable=True),
    Column("lat", Float, nullable=True),
    Column("lon", Float, nullable=True),
)


def new_claim_code() -> str:
    raw = "".join(secrets.choice(_ALPHABET) for _ in range(12))
    return f"{raw[0:4]}-{raw[4:8]}-{raw[8:12]}"


def normalise_code(code: str) -> str:
    """What a person typed or a scanner read, in the stored form (XXXX-XXXX-XXXX)."""
    raw = "".join(ch for ch in code.upper() if ch.isalnum())
    raw = raw.translate(str.maketrans("ILO", "110"))
    if len(raw) != 12:
        return code
    return f"{raw[0:4]}-{raw[4:8]}-{raw[8:12]}"


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


def apply_claim(conn: Connection, device_id: str, code: str, details: Details, via: str,
                now: datetime) -> Optional[str]:
    """Record a claim; None when recorded (or already was), else why it is refused."""
    row = conn.execute(select(claims).where(claims.c.claim_code == code)).first()
    if row is None or row.device_id != device_id:
        return "claim code does not belong to this device"
    if row.claimed_at is not None:
        return None  # claimed before: the box missed our answer, or a second scan
    given = details.model_dump(exclude_none=True)
    conn.execute(update(claims).where(claims.c.claim_code == code)
                 .values(claimed_at=now, claimed_via=via, **given))
    dev = conn.execute(select(devices.c.tags).where(devices.c.device_id == device_id)).first()
    tags = [t for t in (dev.tags if dev else []) or [] if t != UNCLAIMED]
    conn.execute(update(devices).where(devices.c.device_id == device_id)
                 .values(tags=tags, **given))
    return None


def answer_claim(engine: Engine, client: Any, claim: Claim) -> None:
    """Ingest's hook: record a box's claim and answer it on the box's `ack` leaf.

    A database error leaves the box unanswered; it claims again later.
    """
    details = Details(site=claim.site, district=claim.district, lat=claim.lat, lon=claim.lon)
    try:
        with engine.begin() as conn:
            refused = apply_claim(conn, claim.device_id, claim.claim_code, details, "mqtt",
                                  utcnow())
    except SQLAlchemyError as exc:
        log.error("cannot record the claim of %s: %s", claim.device_id, exc)
        return
    if refused:
        log.warning("refused the claim of %s: %s", claim.device_id, refused)
    else:
        log.info("device %s claimed its registration", claim.device_id)
    ack = Ack(device_id=claim.device_id, stream=CLAIM_STREAM,
              epoch=claim_epoch(claim.claim_code), ranges=[(0, 0)], rejected=refused)
    client.publish(topic(claim.device_id, "ack"), encode(ack), qos=1)


def _wait_for_broker(services: ServicesDep) -> None:
    if services.accounts is not None:
        ticket = services.accounts.request()
        if not services.accounts.wait(ticket, timeout=15):
            raise HTTPException(503, "registered, but the broker did not take the accounts yet")


@router.post("/batch", status_code=201, response_model=BatchCreated)
def pre_register(body: BatchCreate, services: ServicesDep, who: Technician) -> BatchCreated:
    now = utcnow()
    made: List[Unclaimed] = []
    device_rows: List[Dict[str, Any]] = []
    claim_rows: List[Dict[str, Any]] = []
    url = services.settings.device_url()
    for _ in range(body.count):
        device_id = f"{body.prefix}-" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(8))
        password, code = new_password(), new_claim_code()
        device_rows.append(dict(
            device_id=device_id, site=UNCLAIMED, kind=body.kind, district=body.district,
            lat=0.0, lon=0.0, tags=[UNCLAIMED, *body.tags],
            password_hash=mosquitto_hash(password), created_at=now, state="unknown",
            desired={}, desired_version=0, reported={}, rejected_count=0,
            published_version=0))
        claim_rows.append(dict(claim_code=code, device_id=device_id, created_at=now))
        made.append(Unclaimed(device_id=device_id, claim_code=code, mqtt=MqttCredentials(
            url=url, username=device_id, password=password, client_id=device_id)))
    try:
        with services.engine.begin() as conn:
            conn.execute(devices.insert(), device_rows)
            conn.execute(claims.insert(), claim_rows)
            ids = [r["device_id"] for r in device_rows]
            record(conn, who, "device.pre_register", f"{len(ids)} devices", {"ids": ids[:100]})
    except IntegrityError as exc:  # a random id or code met an old one: nothing was written
        raise HTTPException(409, "a generated device id or claim code is taken; "
                                 "send the request again") from exc
    _wait_for_broker(services)
    return BatchCreated(data=made, count=len(made))


@router.post("", status_code=201, response_model=ClaimPublic)
def issue(body: ClaimIssue, services: ServicesDep, who: Technician, response: Response
          ) -> ClaimPublic:
    """A code for a box registered online: claimed at once, with its registered site.
    A device that has a code already gets that one back (200)."""
    now = utcnow()
    with services.engine.begin() as conn:
        dev = conn.execute(select(devices).where(devices.c.device_id == body.device_id)).first()
        if dev is None:
            raise HTTPException(404, f"no device {body.device_id}")
        old = conn.execute(select(claims).where(claims.c.device_id == body.device_id)).first()
        if old is not None:
            response.status_code = 200
            return _public(old)
        record(conn, who, "claim.issue", body.device_id)
        conn.execute(claims.insert().values(
            claim_code=new_claim_code(), device_id=body.device_id, created_at=now,
            claimed_at=now, claimed_via="register", site=dev.site, district=dev.district,
            lat=dev.lat, lon=dev.lon))
        row = conn.execute(select(claims).where(claims.c.device_id == body.device_id)).one()
    return _public(row)


@router.get("", response_model=ClaimList)
def list_claims(services: ServicesDep, _who: Viewer, claimed: Optional[bool] = None,
                limit: int = Query(1000, ge=1, le=10000), offset: Offset = 0) -> ClaimList:
    query = select(claims).order_by(claims.c.created_at, claims.c.device_id)
    if claimed is not None:
        query = query.where(claims.c.claimed_at.is_not(None) if claimed
                            else claims.c.claimed_at.is_(None))
    with services.engine.connect() as conn:
        rows = conn.execute(query.limit(limit).offset(offset)).fetchall()
    return ClaimList(data=[_public(r) for r in rows], count=len(rows))


@router.get("/{code}", response_model=ClaimPublic)
def get_claim(code: ClaimCode, services: ServicesDep, _who: Viewer) -> ClaimPublic:
    with services.engine.connect() as conn:
        row = conn.execute(select(claims).where(
            claims.c.claim_code == normalise_code(code))).first()
    if row is None:
        raise HTTPException(404, "no such claim code")
    return _public(row)


@router.post("/{code}", response_model=ClaimPublic)
def claim_over_http(code: ClaimCode, body: Details, services: ServicesDep, who: Technician
                    ) -> ClaimPublic:
    code = normalise_code(code)
    with services.engine.begin() as conn:
        row = conn.execute(select(claims).where(claims.c.claim_code == code)).first()
        if row is None:
            raise HTTPException(404, "no such claim code")
        apply_claim(conn, row.device_id, code, body, "api", utcnow())
        record(conn, who, "claim.claim", row.device_id, body.model_dump(exclude_none=True))
        row = conn.execute(select(claims).where(claims.c.claim_code == code)).one()
    return _public(row)
