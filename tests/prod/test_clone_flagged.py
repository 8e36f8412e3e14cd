"""A cloned SD card, end to end: two real agents started from one card's config (same
device id and password, each its own data dir) fight over the session; the fleet flags
the device, opens a critical `clone` alert, and shows each box's agent version."""

import shutil
from pathlib import Path

import pytest

from testbed.harness import Fleet, agent_process, device, wait_until, write_agent_config

pytestmark = pytest.mark.slow

SYNTHETIC = '[[collectors]]\ntype = "synthetic"\nname = "air"\nvalues = { pm2_5 = 3.0 }\n'


def open_alerts(fleet: Fleet, device_id: str) -> list:  # type: ignore[type-arg]
    with fleet.api() as api:
        resp = api.get("/api/v1/alerts", params={"device_id": device_id, "status": "open"})
    assert resp.status_code == 200, resp.text
    return resp.json()["data"]  # type: ignore[no-any-return]


def test_two_boxes_on_one_card_are_flagged(scratch: Path, fleet: Fleet) -> None:
    mqtt = fleet.register("klon-01")["mqtt"]
    config = write_agent_config(scratch / "card-a", "klon-01", mqtt, SYNTHETIC)
    # The copy: the same files, but the second box's data dir is its own disk.
    copy = scratch / "card-b" / "klon-01"
    shutil.copytree(config.parent, copy)
    (copy / "agent.toml").write_text((copy / "agent.toml").read_text().replace(
        str(config.parent / "data"), str(copy / "data")))
    one = agent_process(scratch, config, "box-a").start()
    try:
        wait_until(lambda: device(fleet, "klon-01")["state"] == "online", 20, what="online")
        single = device(fleet, "klon-01")
        assert single["agent_version"] and single["clone_suspected_at"] is None
        two = agent_process(scratch, copy / "agent.toml", "box-b").start()
        try:
            wait_until(lambda: device(fleet, "klon-01")["clone_suspected_at"], 90,
                       what="the clone flagged")
        finally:
            two.stop()
    finally:
        one.stop()
    alerts = [a for a in open_alerts(fleet, "klon-01") if a["rule"] == "clone"]
    assert len(alerts) == 1
    assert alerts[0]["severity"] == "critical" and "cloned card" in alerts[0]["message"]
