"""The twin against a real broker and fleet: versions, conflicts, secrets, tiers."""

import pytest

from testbed.harness import Fleet, wait_until
from tests.fleet.boxes import FakeBox

pytestmark = pytest.mark.slow

SECRET = "kamera-rahasia-9431"


def test_config_versions_conflicts_and_secrets(fleet: Fleet) -> None:
    box = FakeBox(fleet, "cam-01", fleet.register("cam-01", kind="cctv"))
    with fleet.api() as api:
        got = api.get("/api/v1/devices/cam-01/config").json()
        assert got["version"] == 0 and got["desired"] == {} and got["reported"] == {}
        desired = {"publish": {"sample_interval_s": 5},
                   "collectors": [{"type": "synthetic", "name": "cam",
                                   "values": {"rtsp_password": 867530.9, "fps": 12.0}}]}
        put = api.put("/api/v1/devices/cam-01/config", json={"desired": desired, "version": 0})
        assert put.status_code == 200, put.text
        assert put.json()["version"] == 1
        values = put.json()["desired"]["collectors"][0]["values"]
        assert values == {"rtsp_password": "********", "fps": 12.0}
        # The box gets the real value, retained.
        sent = box.desired(1)
        assert sent["config"]["collectors"][0]["values"]["rtsp_password"] == 867530.9
        # A writer that read version 0 is refused.
        stale = api.put("/api/v1/devices/cam-01/config", json={"desired": {}, "version": 0})
        assert stale.status_code == 409 and "version 1" in stale.text
        # Read-modify-write with the redacted value keeps the stored secret.
        again = api.get("/api/v1/devices/cam-01/config").json()
        again["desired"]["publish"]["sample_interval_s"] = 7
        put = api.put("/api/v1/devices/cam-01/config",
                      json={"desired": again["desired"], "version": again["version"]})
        assert put.status_code == 200, put.text
        sent = box.desired(2)
        assert sent["config"]["publish"]["sample_interval_s"] == 7
        assert sent["config"]["collectors"][0]["values"]["rtsp_password"] == 867530.9
        # What the box would refuse is refused here, naming the field.
        bad = api.put("/api/v1/devices/cam-01/config",
                      json={"desired": {"broker": {"url": "mqtt://x:1"}}, "version": 2})
        assert bad.status_code == 422 and "broker" in bad.text
        unknown = api.put("/api/v1/devices/nobody/config", json={"desired": {}, "version": 0})
        assert unknown.status_code == 404
        audit = api.get("/api/v1/audit", params={"target": "cam-01"}).json()["data"]
    assert [a["action"] for a in audit][:2] == ["config.put", "config.put"]
    assert "867530" not in str([a["detail"] for a in audit])
    assert "867530.9" not in fleet.process.output()
    box.close()


def test_tier_is_applied_only_when_the_box_says_so(fleet: Fleet) -> None:
    box = FakeBox(fleet, "wifi-01", fleet.register("wifi-01", kind="wifi"))
    with fleet.api() as api:
        tiers = api.get("/api/v1/tiers").json()
        assert [t["mbps"] for t in tiers] == [100, 300]
        put = api.put("/api/v1/devices/wifi-01/tier", json={"mbps": 300})
        assert put.status_code == 200, put.text
        twin = put.json()
        assert twin["version"] == 1 and twin["tier_mbps"] == 300
        assert twin["tier_applied_mbps"] is None
        tier = box.desired(1)["config"]["tier"]
        assert tier == {"down_mbps": 300.0, "up_mbps": 100.0, "per_client_mbps": 10.0}
        assert api.put("/api/v1/devices/wifi-01/tier", json={"mbps": 250}).status_code == 422
        added = api.post("/api/v1/tiers", json={"mbps": 250, "down_mbps": 250,
                                                 "up_mbps": 80, "name": "250"})
        assert added.status_code == 201, added.text
        assert api.put("/api/v1/devices/wifi-01/tier", json={"mbps": 250}).json()["version"] == 2
        box.report(1, tier={"down_mbps": 300.0, "up_mbps": 100.0})
        dev = wait_until(lambda: (lambda d: d["tier_applied_mbps"] == 300 and d)(
            api.get("/api/v1/devices/wifi-01").json()), 10, what="tier applied")
        assert dev["tier_mbps"] == 250
        listed = api.get("/api/v1/devices", params={"tier": 250}).json()
        assert [d["device_id"] for d in listed["data"]] == ["wifi-01"]
    box.close()
