"""Issue #20: every figure the dashboard shows is what the API says, and a figure the
page could not read is shown as unknown, never as 0.

A real fleet with simulated boxes (online), points registered in several districts that
send telemetry over MQTT tripping the default rules (water level, PM2.5, a camera down:
more than a handful of open alerts), and a point that never spoke (unknown)."""

import json
import time
from typing import Any, Dict, List, Set

import pytest

from simpul_wire import Record, SourceStatus, TelemetryBatch, encode, utcnow
from testbed.harness import Fleet, Process, wait_until
from testbed.mqtt import Client
from tests.dashboard.test_dashboard import sign_in

pytestmark = pytest.mark.slow

EPOCH = "00112233445566778899"
# id -> (district, lat, lon, trips the rules)
POINTS = {
    "tn-01": ("Tanah Abang", -6.186, 106.811, True),
    "tn-02": ("Tanah Abang", -6.190, 106.815, True),
    "mt-01": ("Menteng", -6.196, 106.832, True),
    "mt-02": ("Menteng", -6.199, 106.838, False),  # registered, never heard from
    "cl-01": ("Cilandak", -6.284, 106.800, True),
    "cl-02": ("Cilandak", -6.290, 106.795, True),
}
# Over the default thresholds (fleet_api/alerts/rules.py): water 150 cm, PM2.5 55.4.
BAD_METRICS = {"flood_water_level_cm": 180.0, "air_pm2_5": 90.0}
BAD_SOURCES = {"cam1": SourceStatus(state="unavailable", reason="rtsp timeout"),
               "flood": SourceStatus(state="ok")}


def trip_rules(fleet: Fleet, device_id: str, password: str) -> None:
    box = Client(fleet.broker.port, device_id, password)
    try:
        rec = Record(seq=0, ts=utcnow(), metrics=BAD_METRICS, sources=BAD_SOURCES)
        payload = encode(TelemetryBatch(device_id=device_id, epoch=EPOCH, records=[rec]))
        assert not box.publish(f"simpul/v1/{device_id}/telemetry", payload).is_failure
    finally:
        box.close()


def truth(fleet: Fleet) -> Dict[str, Any]:
    """What the API says: every device, the open alerts and their count."""
    with fleet.api() as api:
        devices = api.get("/api/v1/devices", params={"limit": 10000})
        alerts = api.get("/api/v1/alerts", params={"status": "open", "limit": 5000})
    assert devices.status_code == 200 and alerts.status_code == 200, (devices.text, alerts.text)
    assert devices.json()["count"] == len(devices.json()["data"])
    assert alerts.json()["count"] == len(alerts.json()["data"])
    return {"devices": {d["device_id"]: d for d in devices.json()["data"]},
            "alerts": sorted(a["id"] for a in alerts.json()["data"]),
            "alerting": sorted({a["device_id"] for a in alerts.json()["data"]}),
            "count": alerts.json()["count"]}


def snapshot(t: Dict[str, Any]) -> str:
    return json.dumps([{k: d["state"] for k, d in t["devices"].items()}, t["alerts"]])


def settled(fleet: Fleet) -> Dict[str, Any]:
    """The API's truth once states and alerts stopped changing (the boxes that spoke
    once go offline after the heartbeat timeout; alerts open under the worker)."""
    last: List[str] = [""]

    def same_twice() -> Any:
        now = truth(fleet)
        stable = snapshot(now) == last[0]
        last[0] = snapshot(now)
        if not stable:
            time.sleep(2)
        return now if stable else None

    return wait_until(same_twice, 60, interval=0.5, what="devices and alerts settled")  # type: ignore[no-any-return]


def ids(page, selector: str) -> Set[str]:  # type: ignore[no-untyped-def]
    return set(page.eval_on_selector_all(selector, "els => els.map(e => e.dataset.id)"))


def by_district(t: Dict[str, Any], fleet: Fleet) -> Dict[str, int]:
    counts = {}
    with fleet.api() as api:
        for district in sorted({d["district"] for d in t["devices"].values()}):
            resp = api.get("/api/v1/devices", params={"district": district, "limit": 1})
            assert resp.status_code == 200, resp.text
            counts[district] = resp.json()["count"]
    return counts


def check_overview(page, fleet: Fleet, t: Dict[str, Any]) -> None:  # type: ignore[no-untyped-def]
    # The open-alert count first: on the code of issue #20 it is 0 (a swallowed 422).
    assert page.locator("#n-alerting").inner_text() == str(t["count"])
    states = [d["state"] for d in t["devices"].values()]
    for state in ("online", "offline", "unknown"):
        assert page.locator(f"#n-{state}").inner_text() == str(states.count(state)), state
    assert page.locator("#load-error").is_hidden()
    assert page.locator("#rings-note").is_hidden()
    # Every point in the table and on the map; rings and row marks on exactly the
    # points the API has open alerts for.
    assert ids(page, "#points tbody tr") == set(t["devices"])
    assert ids(page, "#map circle") == set(t["devices"])
    assert ids(page, "#map circle.alerting") == set(t["alerting"])
    assert ids(page, "#points tbody tr.alerting") == set(t["alerting"])
    # Per district: the shown count, the rows, the points and the rings.
    for district, count in by_district(t, fleet).items():
        page.select_option("#f-district", district)
        mine = {k for k, d in t["devices"].items() if d["district"] == district}
        assert len(mine) == count
        assert page.locator("#shown").inner_text() == f"{count} titik", district
        assert ids(page, "#points tbody tr") == mine, district
        assert ids(page, "#map circle") == mine, district
        assert ids(page, "#map circle.alerting") == mine & set(t["alerting"]), district
    page.select_option("#f-district", "")


def test_every_figure_is_the_apis_and_a_failed_read_is_unknown(
        fleet: Fleet, sim_fleet: Process, page) -> None:  # type: ignore[no-untyped-def]
    for device_id, (district, lat, lon, bad) in POINTS.items():
        made = fleet.register(device_id, district=district, lat=lat, lon=lon)
        if bad:
            trip_rules(fleet, device_id, made["mqtt"]["password"])
    tripped = [k for k, v in POINTS.items() if v[3]]
    wait_until(lambda: set(tripped) <= set(truth(fleet)["alerting"]), 30,
               what="open alerts on every point that tripped a rule")
    t = settled(fleet)
    assert t["count"] >= 2 * len(tripped) > 5  # more than a handful, several per point
    assert len({d["district"] for d in t["devices"].values()}) >= 4
    assert {d["state"] for d in t["devices"].values()} >= {"online", "offline", "unknown"}

    sign_in(page, fleet)
    check_overview(page, fleet, t)
    assert snapshot(truth(fleet)) == snapshot(t), "the fleet changed under the check"

    # The alerts page lists exactly the API's open alerts, and their count.
    page.goto(f"{fleet.url}/alerts")
    page.wait_for_selector("body[data-loaded='1']")
    assert sorted(int(i) for i in ids(page, "#alerts tbody tr")) == t["alerts"]
    assert page.locator("#n-open").inner_text() == str(t["count"])
    assert page.locator("#alerts-note").is_hidden() and page.locator("#load-error").is_hidden()

    # The alerts API fails (the database is locked, say): the figure is unknown, not 0,
    # and no ring or row claims there is nothing to see.
    def locked(route) -> None:  # type: ignore[no-untyped-def]
        route.fulfill(status=503, content_type="application/json",
                      body=json.dumps({"detail": "database is locked"}))

    page.route("**/api/v1/alerts?*", locked)
    page.goto(f"{fleet.url}/")
    page.wait_for_selector("body[data-loaded='1']")
    assert page.locator("#n-alerting").inner_text() == "tidak diketahui"
    assert "database is locked" in page.locator("#load-error").inner_text()
    assert "tidak diketahui" in page.locator("#rings-note").inner_text()
    assert page.locator("#map circle.alerting").count() == 0
    states = [d["state"] for d in t["devices"].values()]
    assert page.locator("#n-online").inner_text() == str(states.count("online"))
    page.goto(f"{fleet.url}/?lang=en")
    page.wait_for_selector("body[data-loaded='1']")
    assert page.locator("#n-alerting").inner_text() == "unknown"
    page.goto(f"{fleet.url}/alerts?lang=id")
    page.wait_for_selector("body[data-loaded='1']")
    assert page.locator("#n-open").inner_text() == "tidak diketahui"
    assert page.locator("#alerts tbody tr").count() == 0
    assert "database is locked" in page.locator("#load-error").inner_text()
    page.unroute("**/api/v1/alerts?*", locked)

    # The fleet itself goes away under an open overview: the next refresh shows every
    # figure as unknown rather than the last ones or zeros.
    page.goto(f"{fleet.url}/")
    page.wait_for_selector("body[data-loaded='1']")
    assert page.locator("#n-alerting").inner_text() == str(t["count"])
    fleet.stop()
    page.evaluate("load()")
    for figure in ("online", "offline", "unknown", "alerting"):
        assert page.locator(f"#n-{figure}").inner_text() == "tidak diketahui", figure
    assert page.locator("#map circle").count() == 0
    assert page.locator("#load-error").is_visible()


def test_more_than_one_page_of_points_and_alerts(fleet: Fleet, page) -> None:  # type: ignore[no-untyped-def]
    """More points than the devices API's cap on `limit` (10000: the page pages through
    them) and more open alerts than the alerts API's (5000, no offset: the total comes
    from `count` and the page says it marks only the newest). Rows straight into the
    fleet's database: registering 10 000 boxes through the API hashes 10 000 passwords."""
    from datetime import timedelta

    from sqlalchemy import create_engine, func, select

    from fleet_api.db import alerts, devices
    from fleet_api.db import utcnow as db_now

    n_points, n_alerts = 10050, 5100
    now = db_now()
    engine = create_engine(fleet.db_url)
    with engine.begin() as conn:
        conn.execute(devices.insert(), [
            {"device_id": f"bulk-{i:05d}", "site": f"Site {i}", "kind": "sensor",
             "district": f"Massal {i % 4}", "lat": -6.2 - (i % 100) / 1000,
             "lon": 106.8 + (i // 100) / 1000, "tags": [], "password_hash": "-",
             "created_at": now, "state": "offline" if i % 3 == 0 else "unknown",
             "last_seen": now - timedelta(minutes=1), "desired": {}, "reported": {}}
            for i in range(n_points)])
        conn.execute(alerts.insert(), [
            {"device_id": f"bulk-{i:05d}", "rule": "water_level", "subject": "",
             "category": "flood", "severity": "critical", "status": "open",
             "message": "water level 180 cm over 150 cm", "value": 180.0, "count": 1,
             "open_key": f"bulk-{i:05d}:water_level:", "opened_at": now, "last_seen_at": now}
            for i in range(n_alerts)])
        assert conn.execute(select(func.count()).select_from(devices)).scalar_one() == n_points
    engine.dispose()
    with fleet.api() as api:
        listed = api.get("/api/v1/devices", params={"limit": 10000}).json()
        counts = {s: api.get("/api/v1/devices", params={"status": s, "limit": 1}).json()["count"]
                  for s in ("online", "offline", "unknown")}
        open_ = api.get("/api/v1/alerts", params={"status": "open", "limit": 5000}).json()
        assert api.get("/api/v1/alerts", params={"limit": 10000}).status_code == 422
    assert listed["count"] == n_points and len(listed["data"]) == 10000
    assert open_["count"] == n_alerts and len(open_["data"]) == 5000

    sign_in(page, fleet)
    assert page.locator("#n-alerting").inner_text() == str(n_alerts)
    for state, count in counts.items():
        assert page.locator(f"#n-{state}").inner_text() == str(count), state
    assert page.locator("#shown").inner_text() == f"{n_points} titik"
    assert len(ids(page, "#map circle")) == n_points
    assert ids(page, "#map circle.alerting") == {a["device_id"] for a in open_["data"]}
    assert "5000 terbaru dari 5100" in page.locator("#rings-note").inner_text()
    assert page.locator("#load-error").is_hidden()

    page.goto(f"{fleet.url}/alerts")
    page.wait_for_selector("body[data-loaded='1']", timeout=20000)
    assert page.locator("#n-open").inner_text() == str(n_alerts)
    assert sorted(int(i) for i in ids(page, "#alerts tbody tr")) == sorted(
        a["id"] for a in open_["data"])
    assert "5000 terbaru dari 5100" in page.locator("#alerts-note").inner_text()
