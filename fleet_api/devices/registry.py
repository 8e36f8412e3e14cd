"""The device registry beyond one device's view: registering many at once, a registered
device's certificate, and the reads of a device's rejects and telemetry for export. The
routes (fleet_api/api/routes/registry.py) parse and shape."""

from typing import Any, Dict, List, Optional, Sequence, Tuple

from sqlalchemy import select
from sqlalchemy.engine import Connection, Engine

from fleet_api.audit import record
from fleet_api.auth import Principal
from fleet_api.broker.accounts import mosquitto_hash, new_password
from fleet_api.db import devices, iso, records, rejects, to_naive_utc, utcnow
from fleet_api.devices.pki import FleetCA, issue, pem
from fleet_api.errors import FleetError


class NoDevice(FleetError):
    """No such device: the one not-found of the device registry, for every route that
    names a device. Not a LookupError: the config routes read that as a tier the
    catalogue lacks."""


class Duplicated(FleetError, ValueError):
    """A device id appears twice in one registration."""


class NoCA(FleetError):
    """This fleet has no CA to sign device certificates with."""


class AlreadyRegistered(FleetError):
    """Some of the ids are registered already; nothing was written."""

    def __init__(self, taken: List[str]) -> None:
        super().__init__(f"already registered: {', '.join(sorted(taken)[:20])}")
        self.taken = taken


def exists(conn: Connection, device_id: str) -> bool:
    return conn.execute(select(devices.c.device_id)
                        .where(devices.c.device_id == device_id)).first() is not None


def require(conn: Connection, device_id: str) -> None:
    """NoDevice unless the device is registered."""
    if not exists(conn, device_id):
        raise NoDevice(f"no device {device_id}")


def register_many(engine: Engine, who: Principal, new: Sequence[Dict[str, Any]]
                  ) -> Dict[str, str]:
    """Register devices (dicts of device_id, site, kind, district, lat, lon, tags) in one
    transaction; their new passwords by id. Duplicated when an id appears twice,
    AlreadyRegistered when any id is taken."""
    ids = [d["device_id"] for d in new]
    if len(set(ids)) != len(ids):
        raise Duplicated("a device_id appears twice in the request")
    now = utcnow()
    passwords = {i: new_password() for i in ids}
    with engine.begin() as conn:
        taken: List[str] = []
        for i in range(0, len(ids), 500):
            taken += [r[0] for r in conn.execute(select(devices.c.device_id)
                                                 .where(devices.c.device_id.in_(ids[i:i + 500])))]
        if taken:
            raise AlreadyRegistered(taken)
        conn.execute(devices.insert(), [{
            "device_id": d["device_id"], "site": d["site"], "kind": d["kind"],
            "district": d["district"], "lat": d["lat"], "lon": d["lon"], "tags": d["tags"],
            "state": "unknown", "password_hash": mosquitto_hash(passwords[d["device_id"]]),
            "created_at": now, "desired": {}, "desired_version": 0, "reported": {},
            "rejected_count": 0, "published_version": 0} for d in new])
        record(conn, who, "device.bulk_register", f"{len(ids)} devices", {"ids": ids[:100]})
    return passwords


def certify(engine: Engine, ca: Optional[FleetCA], who: Principal, device_id: str,
            csr_pem: str) -> Dict[str, Any]:
    """Sign the registered device's certificate request with the fleet's CA, then write
    its audit entry; returns serial (hex), not_after, certificate and ca (PEM). NoDevice,
    then NoCA when `ca` is None or not made yet, then PkiError for a refused request."""
    with engine.connect() as conn:
        require(conn, device_id)
    if ca is None or not ca.exists():
        raise NoCA("this fleet has no CA: start the broker with "
                   "`simpul-fleet broker --tls-port PORT` once")
    cert = issue(engine, ca, device_id, csr_pem)
    with engine.begin() as conn:
        record(conn, who, "device.certificate", device_id)
    return {"serial": format(cert.serial_number, "x"),
            "not_after": iso(cert.not_valid_after_utc.replace(tzinfo=None)),
            "certificate": pem(cert), "ca": ca.ca_pem.read_text()}


def rejects_of(engine: Engine, device_id: str, limit: int) -> Optional[Tuple[int, List[Any]]]:
    """(the device's rejected count, its newest rejects), or None for no such device."""
    with engine.connect() as conn:
        dev = conn.execute(select(devices.c.rejected_count)
                           .where(devices.c.device_id == device_id)).first()
        if dev is None:
            return None
        rows = conn.execute(select(rejects).where(rejects.c.device_id == device_id)
                            .order_by(rejects.c.id.desc()).limit(limit)).fetchall()
    return dev[0], list(rows)


def records_for_export(engine: Engine, device_id: str, stream: str, since: Any, until: Any,
                       limit: int) -> Optional[List[Any]]:
    """A device's records by the box's time (ts, received_at, epoch, seq, metrics), or
    None for no such device."""
    query = select(records.c.ts, records.c.received_at, records.c.epoch, records.c.seq,
                   records.c.metrics).where(records.c.device_id == device_id,
                                            records.c.stream == stream)
    if since is not None:
        query = query.where(records.c.ts >= to_naive_utc(since))
    if until is not None:
        query = query.where(records.c.ts < to_naive_utc(until))
    with engine.connect() as conn:
        if not exists(conn, device_id):
            return None
        return list(conn.execute(query.order_by(records.c.ts, records.c.seq).limit(limit)
                                 ).fetchall())
