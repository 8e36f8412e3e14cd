"""Cloned SD cards, flagged from live births as the ingest stores them.

Each live (not retained) birth is kept a day in `births`; the device's last ten minutes
go through `identity.detect_clones` (boot ids that keep coming back after another one).
A suspect gets `clone_suspected_at` on the device (in the API and on the dashboard) and
a critical `clone` alert. The operator then revokes one box: deregistering the id and
provisioning the real box again, or rotating the credentials to the box it keeps
(docs/identity.md).
"""

from datetime import datetime, timedelta
from typing import Optional

from sqlalchemy import delete, select, update
from sqlalchemy.engine import Connection

from fleet_api.db import births, devices
from fleet_api.devices.identity import Birth, detect_clones

WINDOW = timedelta(minutes=10)
KEEP = timedelta(days=1)


def record_birth(conn: Connection, device_id: str, boot_id: str, version: Optional[str],
                 now: datetime) -> None:
    values = {"boot_id": boot_id[:32]}
    if version:
        values["agent_version"] = version[:64]
    conn.execute(update(devices).where(devices.c.device_id == device_id).values(**values))
    conn.execute(births.insert().values(device_id=device_id, boot_id=boot_id[:32],
                                        received_at=now))
    conn.execute(delete(births).where(births.c.device_id == device_id,
                                      births.c.received_at < now - KEEP))
    recent = [Birth(device_id, row.boot_id, row.received_at) for row in conn.execute(
        select(births.c.boot_id, births.c.received_at)
        .where(births.c.device_id == device_id, births.c.received_at >= now - WINDOW)
        .order_by(births.c.received_at, births.c.id))]
    suspects = detect_clones(recent, WINDOW)
    if not suspects:
        return
    from fleet_api.alerts import (
        rules as alerts,  # alerts imports the store's neighbours; keep it lazy
    )

    suspect = suspects[0]
    conn.execute(update(devices).where(devices.c.device_id == device_id,
                                       devices.c.clone_suspected_at.is_(None))
                 .values(clone_suspected_at=now))
    alerts.apply(conn, device_id, ("clone",), [alerts.Finding(
        "clone", "identity",
        f"cloned card suspected: boot ids {', '.join(suspect.boot_ids)} take the session "
        f"from each other ({suspect.returns} returns since "
        f"{suspect.first_at.isoformat(timespec='seconds')}Z)", float(suspect.returns))], now)
