"""Commands through a real broker: delivered, received, result, expiry, retry, roles."""

from typing import Any, Dict

import pytest

from testbed.harness import Fleet, wait_until
from tests.fleet.boxes import FakeBox

pytestmark = pytest.mark.slow


def status(fleet: Fleet, device_id: str, command_id: str) -> Dict[str, Any]:
    with fleet.api() as api:
        resp = api.get(f"/api/v1/devices/{device_id}/commands/{command_id}")
    assert resp.status_code == 200, resp.text
    return resp.json()  # type: ignore[no-any-return]


def test_command_lifecycle(fleet: Fleet) -> None:
    box = FakeBox(fleet, "box-c", fleet.register("box-c"))
    with fleet.api() as api:
        made = api.post("/api/v1/devices/box-c/commands",
                        json={"name": "self_test", "args": {"quick": True}, "timeout_s": 60})
        assert made.status_code == 201, made.text
        cid = made.json()["command_id"]
        assert made.json()["status"] == "delivered"
        got = wait_until(lambda: box.commands(), 10, what="the command at the box")[0]
        assert got["command_id"] == cid and got["name"] == "self_test"
        assert got["args"] == {"quick": True} and got["expires_at"]
        box.result(cid, "received")
        wait_until(lambda: status(fleet, "box-c", cid)["status"] == "received", 10,
                   what="received")
        box.result(cid, "succeeded", {"sensors": 3})
        done = wait_until(lambda: (lambda s: s["status"] == "succeeded" and s)(
            status(fleet, "box-c", cid)), 10, what="succeeded")
        assert done["result"] == {"sensors": 3}
        # A late `received` never moves it back.
        box.result(cid, "received")
        short = api.post("/api/v1/devices/box-c/commands",
                         json={"name": "diagnostic", "timeout_s": 1}).json()["command_id"]
        expired = wait_until(lambda: (lambda s: s["status"] == "expired" and s)(
            status(fleet, "box-c", short)), 10, what="expiry")
        assert expired["result"] is None
        assert api.post(f"/api/v1/devices/box-c/commands/{cid}/retry").status_code == 409
        again = api.post(f"/api/v1/devices/box-c/commands/{short}/retry")
        assert again.status_code == 201, again.text
        retried = status(fleet, "box-c", again.json()["command_id"])
        assert retried["retry_of"] == short and retried["name"] == "diagnostic"
        box.result(again.json()["command_id"], "rejected", error="unknown command")
        failed = wait_until(lambda: (lambda s: s["status"] == "failed" and s)(
            status(fleet, "box-c", again.json()["command_id"])), 10, what="failed")
        assert "unknown command" in failed["error"]
        listed = api.get("/api/v1/devices/box-c/commands").json()
        assert listed["count"] == 3
        assert status(fleet, "box-c", cid)["status"] == "succeeded"
        assert api.get("/api/v1/devices/box-c/commands/nope").status_code == 404
    tech = fleet.create_token("technician")
    with fleet.api(tech) as api:
        assert api.post("/api/v1/devices/box-c/commands",
                        json={"name": "self_test"}).status_code == 201
        refused = api.post("/api/v1/devices/box-c/commands", json={"name": "reboot"})
        assert refused.status_code == 403 and "operator" in refused.text
    box.close()
