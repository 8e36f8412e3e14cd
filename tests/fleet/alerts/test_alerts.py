"""Alerts end to end: open, dedup, resolve; SSE; signed webhooks routed by category and
retried against a local receiver; acknowledgement by role; offline."""

import json
import threading
from typing import Any, Dict, List

import httpx
import pytest

from fleet_api.alerts.webhooks import verify
from simpul_wire import Record, SourceStatus, StatePayload, TelemetryBatch, encode, utcnow
from testbed.harness import Fleet, wait_until
from testbed.mqtt import Client
from tests.fleet.receiver import Receiver

pytestmark = pytest.mark.slow

EPOCH = "aabbccddeeff00112233"


def send(box: Client, device_id: str, seq: int, metrics: Dict[str, float],
         sources: Dict[str, SourceStatus]) -> None:
    rec = Record(seq=seq, ts=utcnow(), metrics=metrics, sources=sources)
    payload = encode(TelemetryBatch(device_id=device_id, epoch=EPOCH, records=[rec]))
    assert not box.publish(f"simpul/v1/{device_id}/telemetry", payload).is_failure


def open_alerts(fleet: Fleet, **params: Any) -> List[Dict[str, Any]]:
    with fleet.api() as api:
        return api.get("/api/v1/alerts", params=params).json()["data"]  # type: ignore[no-any-return]


def sse_reader(fleet: Fleet, out: List[Dict[str, Any]], stop: threading.Event) -> None:
    try:
        read_events(fleet, out, stop)
    except httpx.HTTPError:
        if not stop.is_set():  # the fleet stopping under a finished test ends the stream
            raise


def read_events(fleet: Fleet, out: List[Dict[str, Any]], stop: threading.Event) -> None:
    with httpx.stream("GET", f"{fleet.url}/api/v1/events", timeout=30,
                      headers={"Authorization": f"Bearer {fleet.token}"}) as resp:
        kind = ""
        for line in resp.iter_lines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                out.append({"event": kind, **json.loads(line[6:])})
            if stop.is_set():
                return


def test_alerts_open_dedup_resolve_and_reach_the_right_agency(fleet: Fleet) -> None:
    bpbd, dlh, kominfo = Receiver([500, 503]), Receiver([]), Receiver([])
    pw = fleet.register("sungai-1")["mqtt"]["password"]
    box = Client(fleet.broker.port, "sungai-1", pw)
    events: List[Dict[str, Any]] = []
    stop = threading.Event()
    with fleet.api() as api:
        assert api.put("/api/v1/groups/sungai", json={
            "thresholds": {"water_level_cm": 100, "pm2_5": 50}}).status_code == 200
        assert api.put("/api/v1/devices/sungai-1/group",
                       json={"group": "sungai"}).status_code == 200
        hooks = {}
        for name, rx, cats in (("BPBD", bpbd, ["flood"]), ("DLH", dlh, ["air"]),
                               ("Diskominfo", kominfo, ["device"])):
            made = api.post("/api/v1/webhooks", json={"name": name, "url": rx.url,
                                                      "categories": cats})
            assert made.status_code == 201, made.text
            hooks[name] = made.json()
        reader = threading.Thread(target=sse_reader, args=(fleet, events, stop), daemon=True)
        reader.start()
        bad = {"cam1": SourceStatus(state="unavailable", reason="rtsp timeout"),
               "flood": SourceStatus(state="ok")}
        send(box, "sungai-1", 0, {"flood_water_level_cm": 120.0, "air_pm2_5": 10.0}, bad)
        found = wait_until(lambda: (lambda a: len(a) == 2 and a)(open_alerts(fleet)), 15,
                           what="two alerts")
        by_rule = {a["rule"]: a for a in found}
        assert set(by_rule) == {"water_level", "camera"}
        assert by_rule["water_level"]["category"] == "flood"
        assert by_rule["water_level"]["severity"] == "critical"
        assert by_rule["water_level"]["value"] == 120.0
        assert "rtsp timeout" in by_rule["camera"]["message"]
        # The same condition again: the same alerts, counted, not repeated.
        send(box, "sungai-1", 1, {"flood_water_level_cm": 130.0, "air_pm2_5": 10.0}, bad)
        wait_until(lambda: [a for a in open_alerts(fleet) if a["rule"] == "water_level"
                            and a["count"] >= 2], 15, what="dedup count")
        assert len(open_alerts(fleet)) == 2
        # Flood goes to BPBD only, after two failed tries; device faults to Diskominfo.
        wait_until(lambda: len(bpbd.requests) >= 3, 20, what="BPBD's third try")
        wait_until(lambda: kominfo.requests, 10, what="Diskominfo's delivery")
        first = bpbd.requests[2]
        body = json.loads(first["body"])
        assert body["event"] == "alert.opened" and body["alert"]["rule"] == "water_level"
        signature = first["headers"]["x-simpul-signature"]
        assert verify(hooks["BPBD"]["secret"], first["body"], signature)
        assert not verify(hooks["DLH"]["secret"], first["body"], signature)
        assert len({r["headers"]["x-simpul-delivery"] for r in bpbd.requests}) == 1
        delivered = api.get(f"/api/v1/webhooks/{hooks['BPBD']['id']}/deliveries").json()
        assert delivered[0]["status"] == "delivered" and delivered[0]["attempts"] == 3
        assert json.loads(kominfo.requests[0]["body"])["alert"]["rule"] == "camera"
        # Viewers read; operators acknowledge.
        wl = by_rule["water_level"]["id"]
        with fleet.api(fleet.create_token("viewer")) as viewer:
            assert viewer.get("/api/v1/alerts").status_code == 200
            assert viewer.post(f"/api/v1/alerts/{wl}/ack").status_code == 403
        acked = api.post(f"/api/v1/alerts/{wl}/ack")
        assert acked.status_code == 200 and acked.json()["acked_at"]
        # The conditions clear: the alerts resolve themselves.
        send(box, "sungai-1", 2, {"flood_water_level_cm": 80.0, "air_pm2_5": 60.0},
             {"cam1": SourceStatus(state="ok")})
        wait_until(lambda: {a["rule"] for a in open_alerts(fleet)} == {"pm2_5"}, 15,
                   what="water and camera resolved, air opened")
        resolved = open_alerts(fleet, status="resolved")
        assert {a["rule"] for a in resolved} == {"water_level", "camera"}
        wait_until(lambda: dlh.requests, 10, what="DLH's delivery")
        wait_until(lambda: any(json.loads(r["body"])["event"] == "alert.resolved"
                               for r in bpbd.requests), 10, what="BPBD told of the resolve")
        kinds = wait_until(lambda: (lambda k: {"alert.opened", "alert.resolved",
                                               "alert.acknowledged"} <= k and k)(
            {e["event"] for e in events}), 10, what="SSE events")
        assert kinds
        assert len(dlh.requests) == 1
    stop.set()
    box.close()
    for rx in (bpbd, dlh, kominfo):
        rx.close()


def test_offline_longer_than_the_group_allows(fleet: Fleet) -> None:
    pw = fleet.register("pos-1")["mqtt"]["password"]
    box = Client(fleet.broker.port, "pos-1", pw)
    with fleet.api() as api:
        api.put("/api/v1/groups/pos", json={"thresholds": {"offline_min": 0.05}})
        api.put("/api/v1/devices/pos-1/group", json={"group": "pos"})
    send(box, "pos-1", 0, {"x": 1.0}, {})
    state = encode(StatePayload(device_id="pos-1", state="offline"))
    assert not box.publish("simpul/v1/pos-1/state", state).is_failure
    alert = wait_until(lambda: open_alerts(fleet, device_id="pos-1"), 20, what="offline")
    assert alert[0]["rule"] == "offline" and alert[0]["category"] == "device"
    send(box, "pos-1", 1, {"x": 1.0}, {})
    wait_until(lambda: not open_alerts(fleet, device_id="pos-1"), 20, what="back online")
    box.close()
