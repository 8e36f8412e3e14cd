"""Claims: boxes registered in the office before anyone knows where they will stand.

Pre-registration gives N devices MQTT credentials and a claim code each; they stay
unclaimed (site "unclaimed", tag "unclaimed") until they claim their registration. A
box claims on its first connection by publishing `claim` (with the site details the
technician gave at install time); a technician may also claim over HTTP, e.g. from a
phone that scanned the label. A box registered online gets a code too (already
claimed), so every enclosure label carries one.

The ingest hands each `claim` message to `answer_claim`, which records it and answers
the box on its `ack` leaf (stream "claim", epoch `claim_epoch(code)`), with `rejected`
set when the code is not this device's. Claims are idempotent: a box that missed the
answer claims again and hears the same answer.
"""

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Dict, List, Optional, Tuple

from sqlalchemy import select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from fleet_api.audit import record
from fleet_api.auth import Principal
from fleet_api.broker.accounts import mosquitto_hash, new_password
from fleet_api.db import claims, devices, utcnow
from fleet_api.errors import FleetError
from simpul_wire.models import CLAIM_STREAM, Ack, Claim, claim_epoch, encode
from simpul_wire.topics import topic

log = logging.getLogger("simpul.claims")

UNCLAIMED = "unclaimed"
# Crockford's base32: no I, L, O, U, so a code read off a label is typed right.
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_ID_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
MAX_BATCH = 1000


class ClaimError(FleetError):
    """A claim operation that cannot be done (the route answers it with an HTTP error)."""


class CodeTaken(ClaimError):
    """A generated device id or claim code met an old one: nothing was written."""


@dataclass
class Unclaimed:
    device_id: str
    claim_code: str
    password: str


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


def apply_claim(conn: Connection, device_id: str, code: str, details: Dict[str, Any],
                via: str, now: datetime) -> Optional[str]:
    """Record a claim; None when recorded (or already was), else why it is refused.
    `details`: the site, district, lat and lon given (None values left out)."""
    row = conn.execute(select(claims).where(claims.c.claim_code == code)).first()
    if row is None or row.device_id != device_id:
        return "claim code does not belong to this device"
    if row.claimed_at is not None:
        return None  # claimed before: the box missed our answer, or a second scan
    conn.execute(update(claims).where(claims.c.claim_code == code)
                 .values(claimed_at=now, claimed_via=via, **details))
    dev = conn.execute(select(devices.c.tags).where(devices.c.device_id == device_id)).first()
    tags = [t for t in (dev.tags if dev else []) or [] if t != UNCLAIMED]
    conn.execute(update(devices).where(devices.c.device_id == device_id)
                 .values(tags=tags, **details))
    return None


def _given(**details: Any) -> Dict[str, Any]:
    return {k: v for k, v in details.items() if v is not None}


def answer_claim(engine: Engine, client: Any, claim: Claim) -> None:
    """Ingest's hook: record a box's claim and answer it on the box's `ack` leaf.

    A database error leaves the box unanswered; it claims again later.
    """
    details = _given(site=claim.site, district=claim.district, lat=claim.lat, lon=claim.lon)
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


def pre_register(engine: Engine, who: Principal, count: int, kind: str, district: str,
                 prefix: str, tags: List[str]) -> List[Unclaimed]:
    """`count` unclaimed devices with new ids, passwords and claim codes, in one
    transaction; CodeTaken when a random id or code met an old one."""
    now = utcnow()
    made: List[Unclaimed] = []
    device_rows: List[Dict[str, Any]] = []
    claim_rows: List[Dict[str, Any]] = []
    for _ in range(count):
        device_id = f"{prefix}-" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(8))
        password, code = new_password(), new_claim_code()
        device_rows.append(dict(
            device_id=device_id, site=UNCLAIMED, kind=kind, district=district,
            lat=0.0, lon=0.0, tags=[UNCLAIMED, *tags],
            password_hash=mosquitto_hash(password), created_at=now, state="unknown",
            desired={}, desired_version=0, reported={}, rejected_count=0,
            published_version=0))
        claim_rows.append(dict(claim_code=code, device_id=device_id, created_at=now))
        made.append(Unclaimed(device_id=device_id, claim_code=code, password=password))
    try:
        with engine.begin() as conn:
            conn.execute(devices.insert(), device_rows)
            conn.execute(claims.insert(), claim_rows)
            ids = [r["device_id"] for r in device_rows]
            record(conn, who, "device.pre_register", f"{len(ids)} devices", {"ids": ids[:100]})
    except IntegrityError as exc:
        raise CodeTaken("a generated device id or claim code is taken; "
                        "send the request again") from exc
    return made


def issue(engine: Engine, who: Principal, device_id: str) -> Tuple[Any, bool]:
    """A code for a box registered online: claimed at once, with its registered site.
    (claim row, True) when made now; a device that has a code already gets that one
    back (False). LookupError when there is no such device."""
    now = utcnow()
    with engine.begin() as conn:
        dev = conn.execute(select(devices).where(devices.c.device_id == device_id)).first()
        if dev is None:
            raise LookupError(device_id)
        old = conn.execute(select(claims).where(claims.c.device_id == device_id)).first()
        if old is not None:
            return old, False
        record(conn, who, "claim.issue", device_id)
        conn.execute(claims.insert().values(
            claim_code=new_claim_code(), device_id=device_id, created_at=now,
            claimed_at=now, claimed_via="register", site=dev.site, district=dev.district,
            lat=dev.lat, lon=dev.lon))
        return conn.execute(select(claims).where(claims.c.device_id == device_id)).one(), True


def listing(engine: Engine, claimed: Optional[bool], limit: int, offset: int) -> List[Any]:
    query = select(claims).order_by(claims.c.created_at, claims.c.device_id)
    if claimed is not None:
        query = query.where(claims.c.claimed_at.is_not(None) if claimed
                            else claims.c.claimed_at.is_(None))
    with engine.connect() as conn:
        return list(conn.execute(query.limit(limit).offset(offset)).fetchall())


def find(engine: Engine, code: str) -> Optional[Any]:
    """The claim of a code as typed or scanned, or None."""
    with engine.connect() as conn:
        return conn.execute(select(claims).where(
            claims.c.claim_code == normalise_code(code))).first()


def claim_by_person(engine: Engine, who: Principal, code: str, details: Dict[str, Any]
                    ) -> Optional[Any]:
    """A technician's claim over HTTP; the claim row after it, or None for no such code."""
    code = normalise_code(code)
    with engine.begin() as conn:
        row = conn.execute(select(claims).where(claims.c.claim_code == code)).first()
        if row is None:
            return None
        apply_claim(conn, row.device_id, code, details, "api", utcnow())
        record(conn, who, "claim.claim", row.device_id, details)
        return conn.execute(select(claims).where(claims.c.claim_code == code)).one()
