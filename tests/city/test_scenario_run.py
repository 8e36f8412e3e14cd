"""A scenario played for real: 40 virtual boxes through a district outage, flapping
links, reboots, a broker restart, a sensor fault, clock skew, rain and a tier rollout;
afterwards every record the boxes numbered is in the fleet once, the faulty sensor was
reported unavailable (not zero), and the rolled-out boxes report the tier applied."""

from pathlib import Path

import httpx
import pytest

from testbed.stack import Stack, load_report, seq_check

SCENARIO = """
name = "everything at once"
seed = 21

[[events]]
at_s = 6
action = "outage"
district = "Kota Barat"
duration_s = 8

[[events]]
at_s = 5
action = "flap"
fraction = 0.3
every_s = 4
duration_s = 15

[[events]]
at_s = 7
action = "reboot"
fraction = 0.1
down_s = 3
spread_s = 3

[[events]]
at_s = 12
action = "broker_restart"
down_s = 3

[[events]]
at_s = 4
action = "sensor_fault"
district = "Kota Timur"
kind = "unavailable"
duration_s = 30

[[events]]
at_s = 4
action = "clock_skew"
fraction = 0.1
offset_s = -600

[[events]]
at_s = 2
action = "rain"
district = "Kota Utara"
mm_h = 300
duration_s = 30

[[events]]
at_s = 3
action = "tier_rollout"
district = "Kota Selatan"
mbps = 300
stage_size = 3
stage_interval_s = 1
"""


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_scenario_loses_nothing(city_dir: Path) -> None:
    stack = Stack(city_dir, f"sqlite:///{city_dir}/fleet.db")
    scenario = city_dir / "scenario.toml"
    scenario.write_text(SCENARIO)
    try:
        stack.start_broker()
        stack.start_serve(1)
        report = city_dir / "report.json"
        sim = stack.sim(40, 1.0, 30, 120, report,
                        ["--scenario", str(scenario), "--prefix", "sc", "--resend-after", "3",
                         "--keepalive", "10"])
        assert sim.p.wait(220) == 0, (city_dir / "sim.log").read_text()[-3000:]
        log = (city_dir / "sim.log").read_text()
        result = load_report(report)
        boxes = result["boxes"]
        check = seq_check(stack.db_url, result)
        assert result["pending"] == 0, log[-3000:]
        assert check["missing"] == 0 and check["duplicates"] == 0, check
        assert check["expected"] >= 40 * 15, check
        assert sum(b["reboots"] for b in boxes.values()) >= 2
        assert sum(b["link_cuts"] for b in boxes.values()) >= 10
        assert "broker back on port" in log
        api = httpx.Client(base_url=stack.url(), timeout=30,
                           headers={"Authorization": f"Bearer {stack.token}"})
        devices = api.get("/api/v1/devices").json()["data"]
        by_district = {}
        for d in devices:
            by_district.setdefault(d["district"], []).append(d)
        south = by_district["Kota Selatan"]
        assert south and all(d["tier_mbps"] == 300 for d in south)
        assert sum(d["tier_applied_mbps"] == 300 for d in south) >= len(south) - 1
        east = by_district["Kota Timur"][0]["device_id"]
        rows = api.get(f"/api/v1/devices/{east}/telemetry", params={"limit": 1000}).json()
        faulty = [r for r in rows["data"] if "pm2_5" not in r["metrics"]]
        assert faulty, "the sensor fault never showed"
        assert all(r["sources"]["sim"]["state"] == "unavailable" for r in faulty)
        north = by_district["Kota Utara"][0]["device_id"]
        rows = api.get(f"/api/v1/devices/{north}/telemetry", params={"limit": 1000}).json()
        levels = [r["metrics"]["water_level_cm"] for r in rows["data"]
                  if "water_level_cm" in r["metrics"]]
        assert max(levels) > min(levels) + 1, "the storm raised no water"
        api.close()
    finally:
        stack.stop()
