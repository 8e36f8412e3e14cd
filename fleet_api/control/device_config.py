"""A device's config as the API changes it: its own desired part, its tier and its group,
each a twin write (fleet_api/control/twin.py) in one transaction with its audit entry;
and the tier catalogue. The routes (fleet_api/api/routes/config.py) parse and shape."""

from typing import Any, Dict, List, Optional

from sqlalchemy import select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from fleet_api.audit import record
from fleet_api.auth import Principal
from fleet_api.control import twin
from fleet_api.db import devices, groups, tiers
from fleet_api.devices.registry import NoDevice
from fleet_api.errors import FleetError


class NoGroup(FleetError):
    """No such group."""


class KeptChanging(FleetError):
    """Concurrent writers kept changing the config under this write."""


class TierExists(FleetError):
    """A tier of that speed is in the catalogue already."""


def device_row(conn: Connection, device_id: str) -> Any:
    row = conn.execute(select(devices).where(devices.c.device_id == device_id)).first()
    if row is None:
        raise NoDevice(f"no device {device_id}")
    return row


def put_own(engine: Engine, who: Principal, device_id: str, desired: Dict[str, Any],
            read_version: int) -> int:
    """The device's own desired part, secrets the writer left redacted kept; the new
    version. VersionConflict when `read_version` is stale."""
    with engine.begin() as conn:
        row = device_row(conn, device_id)
        own = twin.keep_secrets(desired, dict(row.desired or {}))
        if read_version != row.desired_version:
            raise twin.VersionConflict(row.desired_version)
        version = twin.write(conn, row, read_version, own)
        record(conn, who, "config.put", device_id, {"version": version, "desired": own})
    return version


def put_tier(engine: Engine, who: Principal, device_id: str, mbps: float) -> int:
    """`tier` from the catalogue into the device's desired config; the new version.
    A concurrent writer means read again and reapply, three times at most."""
    for _attempt in range(3):
        try:
            with engine.begin() as conn:
                row = device_row(conn, device_id)
                own = dict(row.desired or {})
                own["tier"] = twin.tier_section(conn, mbps)
                version = twin.write(conn, row, row.desired_version, own)
                record(conn, who, "tier.put", device_id, {"mbps": mbps, "version": version})
            return version
        except twin.VersionConflict:
            continue
    raise KeptChanging("the config kept changing under this write; try again")


def put_group(engine: Engine, who: Principal, device_id: str, group: Optional[str]) -> None:
    """Assign the device to a group (its template, thresholds and rollouts) or to none."""
    with engine.begin() as conn:
        row = device_row(conn, device_id)
        rev = None
        if group is not None:
            grp = conn.execute(select(groups.c.rev).where(groups.c.name == group)).first()
            if grp is None:
                raise NoGroup(f"no group {group}")
            rev = grp[0]
        twin.write(conn, row, row.desired_version, dict(row.desired or {}),
                   group=group, rev=rev)
        record(conn, who, "device.group", device_id, {"group": group})


def list_tiers(engine: Engine) -> List[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(tiers).order_by(tiers.c.mbps)).fetchall())


def add_tier(engine: Engine, who: Principal, values: Dict[str, Any]) -> None:
    try:
        with engine.begin() as conn:
            conn.execute(tiers.insert().values(**values))
            record(conn, who, "tier.add", f"{values['mbps']:g}", values)
    except IntegrityError as exc:
        raise TierExists(f"a tier of {values['mbps']:g} Mbps exists") from exc
