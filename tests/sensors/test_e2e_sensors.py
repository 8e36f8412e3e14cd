"""End to end per driver: simulated sensor on a pty -> agent -> Mosquitto -> fleet -> API."""

import os
from pathlib import Path
from typing import Any, Dict, List

import pytest

from testbed.harness import Fleet, agent_process, telemetry, wait_until, write_agent_config

pytestmark = pytest.mark.slow

CASES = [
    ("pms5003", 'mode = "passive"\n', "pm2_5=35,pm10=51,pm1_0=20",
     {"air_pm2_5": 35.0, "air_pm10": 51.0, "air_pm1_0": 20.0}),
    ("sds011", 'mode = "query"\n', "pm2_5=123.6,pm10=261.8",
     {"air_pm2_5": 123.6, "air_pm10": 261.8}),
    ("bridge", "report_interval_ms = 300\n", "water_level=87.5,noise=61.2",
     {"air_water_level": 87.5, "air_noise": 61.2}),
    ("modbus", None, "water_level=143.2,noise=-3.5,rain=12.25",
     {"air_water_level": 143.2, "air_noise": -3.5, "air_rain": 12.25}),
]


def collector(driver: str, link: str, extra: Any) -> str:
    text = (f'[[collectors]]\ntype = "{driver}"\nname = "air"\nport = "{link}"\n'
            "poll_interval_s = 0.3\nstale_after_s = 2.0\n")
    return text + (f'map_file = "{link}.map.toml"\n' if extra is None else extra)


def ok_with(records: List[Dict[str, Any]], expected: Dict[str, float]) -> List[Dict[str, Any]]:
    return [r for r in records
            if r["sources"].get("air", {}).get("state") == "ok"
            and all(r["metrics"].get(k) == pytest.approx(v) for k, v in expected.items())]


def start_box(scratch: Path, fleet: Fleet, driver: str, link: str, extra: Any):
    device_id = f"sens-{driver}-{os.getpid()}"
    reg = fleet.register(device_id)
    config = write_agent_config(scratch, device_id, reg["mqtt"], collector(driver, link, extra))
    return device_id, agent_process(scratch, config, device_id).start()


@pytest.mark.parametrize(("driver", "extra", "values", "expected"), CASES)
def test_sensor_values_reach_the_api(scratch, broker, fleet, sensor_sim, driver, extra,
                                     values, expected):
    sim = sensor_sim(driver, "--values", values, "--interval", "0.3")
    device_id, agent = start_box(scratch, fleet, driver, sim.link, extra)
    try:
        good = wait_until(lambda: len(ok_with(telemetry(fleet, device_id), expected)) >= 3
                          and ok_with(telemetry(fleet, device_id), expected), 45,
                          what=f"{driver} readings in the API")
        assert all("air_frames_ok" not in r["metrics"] for r in good)
        # The port's counters go up with health, with the source's status.
        counted = wait_until(lambda: [r for r in telemetry(fleet, device_id, stream="health")
                                      if r["metrics"].get("air_frames_ok", 0) >= 1
                                      and r["sources"]["air"]["state"] == "ok"], 30,
                             what="port counters in health")
        assert "air_last_reading_age_s" in counted[-1]["metrics"]
    finally:
        agent.stop()
    assert "Traceback" not in agent.output()


def test_unplug_replug_is_visible_and_readings_resume(scratch, broker, fleet, sensor_sim):
    expected = {"air_pm2_5": 42.4, "air_pm10": 50.5}
    sim = sensor_sim("sds011", "--values", "pm2_5=42.4,pm10=50.5", "--interval", "0.3")
    device_id, agent = start_box(scratch, fleet, "sds011", sim.link, "")
    try:
        first = wait_until(lambda: ok_with(telemetry(fleet, device_id), expected), 45,
                           what="first readings")
        healthy = wait_until(lambda: [r for r in telemetry(fleet, device_id, stream="health")
                                      if r["sources"].get("air", {}).get("state") == "ok"], 30,
                             what="the sensor ok in health")
        up_seq = {"telemetry": first[0]["seq"], "health": max(r["seq"] for r in healthy)}
        sim.unplug_toggle()

        def outage(stream: str) -> List[Dict[str, Any]]:
            return [r for r in telemetry(fleet, device_id, stream=stream)
                    if r["seq"] > up_seq[stream]
                    and r["sources"].get("air", {}).get("state") == "unavailable"
                    and (stream == "telemetry" or r["metrics"].get("air_frames_ok", 0) >= 1)]

        down = wait_until(lambda: outage("telemetry"), 30, what="the outage in telemetry")
        assert all("air_pm2_5" not in r["metrics"] for r in down)
        wait_until(lambda: outage("health"), 30, what="the outage in health")
        assert "lost" in down[0]["sources"]["air"]["reason"] or \
            "cannot open" in down[0]["sources"]["air"]["reason"]
        last_down = max(r["seq"] for r in down)
        sim.unplug_toggle()
        wait_until(lambda: [r for r in ok_with(telemetry(fleet, device_id), expected)
                            if r["seq"] > last_down], 45, what="readings after replug")
        assert agent.alive()  # resumed without a restart
    finally:
        agent.stop()
