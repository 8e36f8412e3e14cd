"""Registry against a real broker: deregistration drops the live session and the account,
bulk registration in one reload, rejected payloads per device, CSV export."""

import csv
import io
import time

import pytest

from testbed.harness import Fleet, wait_until
from testbed.mqtt import Client
from tests.test_ingest import batch

pytestmark = pytest.mark.slow


def test_delete_drops_the_live_session_and_refuses_reconnects(fleet: Fleet) -> None:
    pw = fleet.register("gone-1")["mqtt"]["password"]
    box = Client(fleet.broker.port, "gone-1", pw)
    dropped = []
    box.c.on_disconnect = lambda c, u, f, rc, p: dropped.append(rc)
    box.c.reconnect_delay_set(60, 120)  # only our own reconnect below
    assert not box.publish("simpul/v1/gone-1/telemetry", batch("gone-1", range(2))).is_failure
    with fleet.api(fleet.create_token("operator")) as api:
        assert api.delete("/api/v1/devices/gone-1").status_code == 403
    with fleet.api() as api:
        assert api.delete("/api/v1/devices/gone-1").status_code == 204
        assert api.get("/api/v1/devices/gone-1").status_code == 404
        assert api.delete("/api/v1/devices/gone-1").status_code == 404
        audit = api.get("/api/v1/audit", params={"action": "device.delete"}).json()["data"]
    assert audit[0]["target"] == "gone-1"
    wait_until(lambda: dropped, 10, what="the live session dropped")
    box.c.loop_stop()
    again = Client(fleet.broker.port, "gone-1", pw)
    assert again.connack is not None and again.connack.is_failure
    again.c.loop_stop()
    assert "gone-1" not in (fleet.broker.data / "passwd").read_text()


def test_bulk_registration_rejects_and_csv(fleet: Fleet) -> None:
    items = [{"device_id": f"bulk-{i:04d}", "site": f"Pos {i}", "kind": "wifi",
              "district": "Kota Timur", "lat": -6.1, "lon": 106.9} for i in range(1500)]
    with fleet.api() as api:
        started = time.monotonic()
        made = api.post("/api/v1/devices/bulk", json={"devices": items}, timeout=120)
        took = time.monotonic() - started
        assert made.status_code == 201, made.text[:500]
        creds = {d["device_id"]: d["mqtt"] for d in made.json()["data"]}
        assert len(creds) == 1500
        dup = api.post("/api/v1/devices/bulk", json={"devices": items[:2]})
        assert dup.status_code == 409 and "bulk-0000" in dup.text
        assert api.get("/api/v1/devices", params={"district": "Kota Timur"}
                       ).json()["count"] == 1500
    print(f"bulk registration of 1500 devices: {took:.2f}s")
    box = Client(fleet.broker.port, "bulk-0007", creds["bulk-0007"]["password"])
    assert box.connack is not None and not box.connack.is_failure
    topic = "simpul/v1/bulk-0007/telemetry"
    assert not box.publish(topic, b"{not json").is_failure
    assert not box.publish(topic, batch("bulk-0007", range(3), 5.0)).is_failure
    with fleet.api() as api:
        rejects = wait_until(lambda: (lambda r: r["count"] and r)(
            api.get("/api/v1/devices/bulk-0007/rejects").json()), 10, what="the reject")
        assert rejects["rejected_count"] == 1 and "not JSON" in rejects["data"][0]["reason"]
        assert rejects["data"][0]["topic"] == topic
        wait_until(lambda: api.get("/api/v1/devices/bulk-0007/telemetry").json()["count"] == 3,
                   10, what="telemetry")
        resp = api.get("/api/v1/devices/bulk-0007/telemetry.csv")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(resp.text)))
    assert [float(r["pm2_5"]) for r in rows] == [5.0, 6.0, 7.0]
    assert [int(r["seq"]) for r in rows] == [0, 1, 2]
    box.close()

