"""Sensor collectors: sample configs parse; unplug/replug and silence at collector level."""

import time

import pytest

from agent.collectors import modbus as modbus_mod
from agent.collectors import serial_sensors
from agent.collectors.base import Accumulator
from agent.collectors.registry import build
from simpul_wire.config import parse_config
from simpul_wire.errors import ConfigError
from tests.sensors.conftest import wait_for

HEAD = '[device]\ndevice_id = "box-1"\n'


def _sample(module) -> str:
    doc = module.__doc__
    return "\n".join(line[4:] for line in doc.split("Sample config:")[1].splitlines())


@pytest.mark.parametrize("module", [serial_sensors, modbus_mod])
def test_sample_configs_parse(module):
    config = parse_config(HEAD + _sample(module))
    assert config.collectors
    for section in config.collectors:
        collector = build(section)
        assert collector.name == section.name


def test_unknown_key_is_refused():
    text = HEAD + '[[collectors]]\ntype = "sds011"\nname = "air"\nport = "/dev/x"\nbaud = 9600\n'
    with pytest.raises(ConfigError, match="unknown key 'baud'"):
        parse_config(text)


def test_modbus_needs_one_map():
    with pytest.raises(ConfigError, match="exactly one of map_file and registers"):
        parse_config(HEAD + '[[collectors]]\ntype = "modbus"\nport = "/dev/x"\n')


def gather(collector):
    acc = Accumulator()
    collector.gather(acc)
    return acc


def health(collector):
    acc = Accumulator()
    collector.gather_health(acc)
    return acc


def wait_state(collector, state, timeout=15.0):
    box = {}

    def check():
        box["acc"] = gather(collector)
        return box["acc"].sources[collector.name].state == state

    wait_for(check, timeout, f"{collector.name} to be {state}")
    return box["acc"]


CASES = [
    ("pms5003", {"mode": "passive"}, "pm2_5=12,pm10=20,pm1_0=5", "air_pm2_5", 12.0),
    ("sds011", {"mode": "query"}, "pm2_5=33.3,pm10=44.4", "air_pm10", 44.4),
    ("bridge", {}, "water_level=91.5", "air_water_level", 91.5),
    ("modbus", {}, "water_level=143.2", "air_water_level", 143.2),
]


@pytest.mark.slow
@pytest.mark.parametrize(("driver", "extra", "values", "metric", "expected"), CASES)
def test_unplug_replug_resumes_without_restart(sensor_sim, driver, extra, values, metric,
                                               expected):
    sim = sensor_sim(driver, "--values", values, "--interval", "0.2")
    section = {"type": driver, "name": "air", "port": sim.link, "poll_interval_s": 0.2,
               "stale_after_s": 2.0, **extra}
    if driver == "modbus":
        section["map_file"] = sim.map_file
    config = parse_config(HEAD + "[[collectors]]\n" + "".join(
        f"{k} = {v!r}\n".replace("'", '"') for k, v in section.items()))
    collector = build(config.collectors[0])
    collector.start()
    try:
        acc = wait_state(collector, "ok")
        assert acc.metrics[metric] == pytest.approx(expected)
        assert "air_frames_ok" not in acc.metrics  # counters go with health
        figures = health(collector)
        assert figures.metrics["air_frames_ok"] >= 1
        assert figures.metrics["air_last_reading_age_s"] < 2.0
        assert figures.sources["air"].state == "ok"
        # Every metric has a unit in the collector's catalogue.
        units = collector.units()
        assert set(acc.metrics) | set(figures.metrics) <= set(units)
        assert units[metric] in {"ug/m3", "cm"}

        sim.unplug_toggle()
        acc = wait_state(collector, "unavailable")
        assert metric not in acc.metrics  # never zero, never the old value
        reason = acc.sources["air"].reason or ""
        assert sim.link in reason or "slave" in reason or "waiting" in reason
        time.sleep(1.0)  # stays out a while: the reader retries with backoff
        assert gather(collector).sources["air"].state == "unavailable"
        assert health(collector).sources["air"].state == "unavailable"

        sim.unplug_toggle()
        acc = wait_state(collector, "ok", timeout=20)
        assert acc.metrics[metric] == pytest.approx(expected)
    finally:
        collector.close()


@pytest.mark.slow
def test_silence_then_resume_and_counters(sensor_sim):
    sim = sensor_sim("sds011", "--values", "pm2_5=5,pm10=6", "--interval", "0.1",
                     "--garbage", "0.3", "--bad-checksum", "0.2", "--seed", "3")
    config = parse_config(HEAD + '[[collectors]]\ntype = "sds011"\nname = "air"\n'
                          f'port = "{sim.link}"\nstale_after_s = 1.0\n')
    collector = build(config.collectors[0])
    collector.start()
    try:
        wait_state(collector, "ok")
        time.sleep(2.0)
        sim.silence_toggle()
        acc = wait_state(collector, "unavailable")
        assert "no readings from" in acc.sources["air"].reason
        assert "air_pm2_5" not in acc.metrics
        sim.silence_toggle()
        wait_state(collector, "ok")
        figures = health(collector).metrics
        assert figures["air_checksum_errors"] >= 1
        assert figures["air_resyncs"] >= 1
        assert figures["air_bytes_dropped"] >= figures["air_checksum_errors"] * 10
    finally:
        collector.close()


@pytest.mark.slow
def test_stuck_values_turn_stale(sensor_sim):
    sim = sensor_sim("pms5003", "--stuck", "--interval", "0.2")
    config = parse_config(HEAD + '[[collectors]]\ntype = "pms5003"\nname = "air"\n'
                          f'port = "{sim.link}"\nstuck_after_s = 1\n')
    collector = build(config.collectors[0])
    collector.start()
    try:
        wait_state(collector, "ok")
        acc = wait_state(collector, "stale", timeout=10)
        assert "unchanged" in acc.sources["air"].reason
    finally:
        collector.close()
