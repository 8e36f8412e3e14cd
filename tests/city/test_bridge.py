"""A district broker bridged to the city's broker (broker_config/bridge.conf.in), with
two real Mosquitto instances. Boxes connect to the district; the city's broker is
stopped while they keep publishing, then comes back: every record reaches the fleet
once, the fleet's acks come back over the bridge (the outboxes empty), and desired
config still travels down and reported config up."""

import json
import random
import time
from pathlib import Path

import httpx
import pytest

from simulator.fleet import device_specs, register_all
from testbed.harness import port_open, wait_until
from testbed.ports import free_port
from testbed.stack import Proc, Stack, load_report, seq_check

BOXES = 20


def _records_received_during(db_url: str, start: float, end: float) -> int:
    """Records whose box time lies in the cut but which the fleet stored after it."""
    from datetime import datetime, timezone

    from sqlalchemy import create_engine, text

    engine = create_engine(db_url)
    lo = datetime.fromtimestamp(start, timezone.utc).replace(tzinfo=None)
    hi = datetime.fromtimestamp(end, timezone.utc).replace(tzinfo=None)
    with engine.connect() as conn:
        n = conn.execute(text("SELECT COUNT(*) FROM records WHERE ts > :lo AND ts < :hi "
                              "AND received_at > :hi"), {"lo": lo, "hi": hi}).scalar_one()
    engine.dispose()
    return int(n)


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_records_cross_a_cut_bridge_once_and_acks_come_back(city_dir: Path) -> None:
    district_port, district_fleet_port = free_port(), free_port()
    db_url = f"sqlite:///{city_dir}/fleet.db"
    city = Stack(city_dir, db_url,
                 serve_args=["--device-broker-url", f"mqtt://127.0.0.1:{district_port}"])
    district_data = city_dir / "district"
    district = None
    try:
        city.start_broker()
        city.start_serve(1)
        api = httpx.Client(base_url=city.url(), timeout=60,
                           headers={"Authorization": f"Bearer {city.token}"})
        regs = register_all(api, device_specs("kb", BOXES, random.Random(3)))
        assert all(r.url == f"mqtt://127.0.0.1:{district_port}" for r in regs)
        creds = city_dir / "creds.json"
        creds.write_text(json.dumps([r.__dict__ for r in regs]))
        # What an admin does for a district: creates its bridge for the district's boxes
        # and gives the district broker the password and the device accounts (a copy of
        # the city's password file's device lines).
        made = api.post("/api/v1/bridges", json={"name": "kota-barat",
                                                 "districts": sorted({r.district for r in regs})})
        assert made.status_code == 201, made.text
        district_data.mkdir()
        (district_data / "bridge.password").write_text(made.json()["password"] + "\n")
        devices = [ln for ln in (city.broker_data / "passwd").read_text().splitlines()
                   if ln.startswith("kb-")]
        assert len(devices) == BOXES
        (district_data / "passwd").write_text("\n".join(devices) + "\n")
        district = Proc(["fleet_api.cli", "broker", "--port", str(district_port),
                         "--fleet-port", str(district_fleet_port), "--data",
                         str(district_data), "--bind", "127.0.0.1", "--bridge",
                         f"127.0.0.1:{city.port}", "--bridge-name", "kota-barat"],
                        city_dir / "district.log")
        wait_until(lambda: port_open(district_port), 20, what="the district broker")

        report = city_dir / "report.json"
        sim = city.sim(BOXES, 1.0, 45, 180, report,
                       ["--credentials", str(creds), "--resend-after", "3", "--ramp", "50"])
        wait_until(lambda: _stored(city, "kb-0001") > 3, 60, what="records over the bridge")

        cut_start = time.time()
        assert city.broker is not None
        city.broker.stop()  # the uplink to the command centre is gone
        time.sleep(12)
        cut_end = time.time()
        city.start_broker()  # healed: same data dir, same ports

        assert sim.p.wait(300) == 0, (city_dir / "sim.log").read_text()[-2000:]
        result = load_report(report)
        check = seq_check(db_url, result)
        stuck = {k: (b["depth"], b["unconfirmed"], b["in_flight"])
                 for k, b in result["boxes"].items() if b["depth"]}
        assert result["pending"] == 0, (f"{result['pending']} records unconfirmed: acks did "
                                        f"not come back over the bridge; {check}; (depth, "
                                        f"sent-unconfirmed, batches in flight): {stuck}")
        assert check["missing"] == 0 and check["duplicates"] == 0, check
        assert check["expected"] >= BOXES * 30, check
        # Records made during the cut crossed the bridge after it healed.
        assert _records_received_during(db_url, cut_start + 1, cut_end - 1) >= BOXES * 5

        # Control travels down the bridge too: a tier set now reaches a running box?
        # The simulated fleet has stopped; the config's path is checked by a new one.
        resp = api.put("/api/v1/devices/kb-0002/tier", json={"mbps": 300})
        assert resp.status_code == 200, resp.text
        sim2 = city.sim(BOXES, 1.0, 15, 10, city_dir / "report2.json",
                        ["--credentials", str(creds), "--resend-after", "3"])
        wait_until(lambda: api.get("/api/v1/devices/kb-0002").json().get(
            "tier_applied_mbps") == 300, 60, what="the tier applied over the bridge")
        sim2.stop()
        api.close()
    finally:
        if district is not None:
            district.stop()
        city.stop()


def _stored(city: Stack, device_id: str) -> int:
    try:
        resp = httpx.get(f"{city.url()}/api/v1/devices/{device_id}/telemetry",
                         headers={"Authorization": f"Bearer {city.token}"}, timeout=10)
    except httpx.HTTPError:
        return 0
    return int(resp.json()["count"]) if resp.status_code == 200 else 0
