"""The device list's fast page builder: presence as `presence()` decides it, every item
a valid DevicePublic, and the single-device view is the same builder on one row."""

from datetime import timedelta

import pytest
from sqlalchemy import select

from fleet_api.api.routes.devices import DevicePublic
from fleet_api.db import devices, make_engine, migrate, utcnow
from fleet_api.devices.views import PUBLIC_COLUMNS, build_page, public_view
from fleet_api.ingest.presence import presence


@pytest.mark.parametrize("alive", [True, False])
def test_page_matches_the_single_view(db_url: str, alive: bool) -> None:
    engine = make_engine(db_url)
    migrate(engine)
    now = utcnow()
    cases = [("online", now), ("online", now - timedelta(seconds=121)),
             ("online", now - timedelta(seconds=120)), ("online", None),
             ("offline", now), ("unknown", None)]
    with engine.begin() as conn:
        conn.execute(devices.insert(), [dict(
            device_id=f"pg-{i}", site="S", kind="wifi", district="K", lat=1.0, lon=2.0,
            tags=["a"] if i % 2 else [], password_hash="x", created_at=now, state=state,
            last_seen=seen, desired={}, desired_version=0, reported={}, rejected_count=i,
            published_version=0, agent_version="0.1.0" if i else None,
            clone_suspected_at=now if i == 2 else None, rotation_state="staging" if i == 3
            else None, ntp_synced=bool(i % 2)) for i, (state, seen) in enumerate(cases)])
        rows = conn.execute(select(*PUBLIC_COLUMNS).order_by(devices.c.device_id)).fetchall()
        full = conn.execute(select(devices).order_by(devices.c.device_id)).fetchall()
    page = build_page(rows, now, 120.0, alive)
    for item, (state, seen) in zip(page, cases):
        assert (item["state"], item["online"]) == presence(state, seen, now, 120.0, alive)
        assert DevicePublic.model_validate(item).model_dump(mode="json") == item
    assert [DevicePublic(**public_view(r, now, 120.0, alive)).model_dump(mode="json")
            for r in full] == page
    assert [d["state"] for d in page] == (
        ["online", "offline", "online", "offline", "offline", "unknown"] if alive
        else ["unknown"] * 6)
    engine.dispose()
