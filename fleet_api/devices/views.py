"""The public view of a device, as the device routes (fleet_api/api/routes/devices.py)
answer it: the columns it needs, the page builder (presence decided on each row), the
list with its filters, one device with its pending deregistration, and registering one
device with its audit entry in the same transaction. The routes parse and shape."""

from datetime import datetime, timedelta
from typing import Any, Dict, List, Optional, Tuple

from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from fleet_api.audit import record
from fleet_api.auth import Principal
from fleet_api.broker.accounts import mosquitto_hash, new_password
from fleet_api.control.device_config import device_row
from fleet_api.db import devices, utcnow
from fleet_api.devices.registry import AlreadyRegistered
from fleet_api.devices.revoke import is_pending
from fleet_api.ingest.presence import ingest_alive

# What a device view needs: not the desired and reported config (JSON, often large),
# whose decoding was most of a device-list page's time.
PUBLIC_COLUMNS = [devices.c[name] for name in (
    "device_id", "site", "kind", "district", "lat", "lon", "tags", "state", "last_seen",
    "tier_mbps", "tier_applied_mbps", "rejected_count", "created_at", "agent_version",
    "clone_suspected_at", "rotation_state", "ntp_synced")]

_UTC_SUFFIX = "+00:00"


def build_page(rows: Any, now: datetime, timeout_s: float, alive: bool
               ) -> List[Dict[str, Any]]:
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


def public_view(row: Any, now: datetime, timeout_s: float, alive: bool) -> Dict[str, Any]:
    """One device's view: the list page's builder on one row (any row with the public
    columns), so the single view and the list cannot drift apart."""
    return build_page([tuple(getattr(row, c.name) for c in PUBLIC_COLUMNS)], now, timeout_s,
                      alive)[0]


def list_page(engine: Engine, timeout_s: float, limit: int, offset: int,
              district: Optional[str] = None, kind: Optional[str] = None,
              status: Optional[str] = None, tier: Optional[float] = None
              ) -> Dict[str, Any]:
    """A page of the device list ({"data": views, "count": all that match}), ordered by
    id, filtered on district, kind, tier and presence (`status`)."""
    query = select(*PUBLIC_COLUMNS).order_by(devices.c.device_id)
    count_q = select(func.count()).select_from(devices)
    for column, value in ((devices.c.district, district), (devices.c.kind, kind),
                          (devices.c.tier_mbps, tier)):
        if value is not None:
            query = query.where(column == value)
            count_q = count_q.where(column == value)
    now = utcnow()
    with engine.connect() as conn:
        alive = ingest_alive(conn, now)
        if status is None:
            total = int(conn.execute(count_q).scalar_one())
            rows = conn.execute(query.limit(limit).offset(offset)).fetchall()
            return {"data": build_page(rows, now, timeout_s, alive), "count": total}
        # Presence depends on time and ingest health, so filter after computing it.
        every = build_page(conn.execute(query).fetchall(), now, timeout_s, alive)
    matching = [d for d in every if d["state"] == status]
    return {"data": matching[offset:offset + limit], "count": len(matching)}


def device_view(engine: Engine, device_id: str, timeout_s: float
                ) -> Tuple[Dict[str, Any], bool]:
    """(the device's public view, whether its deregistration is pending); NoDevice
    (fleet_api/control/device_config.py) when there is no such device."""
    now = utcnow()
    with engine.connect() as conn:
        row = device_row(conn, device_id)
        alive = ingest_alive(conn, now)
        pending = is_pending(conn, device_id)
    return public_view(row, now, timeout_s, alive), pending


def registered_view(engine: Engine, device_id: str, now: datetime, timeout_s: float
                    ) -> Dict[str, Any]:
    """The public view of a device just registered, its presence as at `now`."""
    with engine.connect() as conn:
        row = conn.execute(select(devices).where(devices.c.device_id == device_id)).one()
        alive = ingest_alive(conn, now)
    return public_view(row, now, timeout_s, alive)


def register(engine: Engine, who: Principal, new: Dict[str, Any], now: datetime) -> str:
    """Register one device (a dict of device_id, site, kind, district, lat, lon, tags),
    created at `now`, with its audit entry in the same transaction; its new password.
    AlreadyRegistered when the id is taken."""
    password = new_password()
    try:
        with engine.begin() as conn:
            conn.execute(devices.insert().values(
                device_id=new["device_id"], site=new["site"], kind=new["kind"],
                district=new["district"], lat=new["lat"], lon=new["lon"], tags=new["tags"],
                password_hash=mosquitto_hash(password), created_at=now, state="unknown",
                desired={}, desired_version=0, reported={}, rejected_count=0))
            record(conn, who, "device.register", new["device_id"],
                   {"site": new["site"], "kind": new["kind"], "district": new["district"]})
    except IntegrityError as exc:
        raise AlreadyRegistered([new["device_id"]]) from exc
    return password
