"""Why a Modbus poll failed: every failing register, why, for how many polls in a row,
and the wiring hint, against the pymodbus slave of `simpul-sim sensor --driver modbus`."""

import re

import pytest

from agent.collectors.base import Accumulator
from agent.collectors.modbus import ModbusCollector, ModbusPoller, describe_failures, register_map
from simpul_wire.config.sensors import ModbusConfig
from tests.sensors.conftest import wait_for

# The simulated slave 1 serves holding and input registers 0..31: `far` and `farther`
# get exception 2 (illegal data address), the others answer. Four requests in all.
MAP = """
[[registers]]
name = "level"
register = 0
[[registers]]
name = "noise"
register = 1
type = "int16"
[[registers]]
name = "rain"
register = 2
type = "float32"
[[registers]]
name = "far"
register = 40
[[registers]]
name = "farther"
register = 50
[[registers]]
name = "temperature"
function = "input"
register = 0
"""

EXC2 = "exception 2, illegal data address"


@pytest.mark.py39
def test_describe_failures_groups_same_reason_and_count() -> None:
    failed = {"level": "timeout", "rain": "timeout", "temp": "exception 2, illegal data address"}
    streaks = {"level": 2, "rain": 2, "temp": 1}
    assert describe_failures(failed, streaks, 5) == (
        "3 of 5 registers failed: level, rain (timeout) x2, "
        "temp (exception 2, illegal data address) x1")
    assert describe_failures({"x": "port lost"}, {"x": 1}, 1) == \
        "1 of 1 register failed: x (port lost) x1"


def _config(tmp_path, port: str) -> ModbusConfig:
    map_file = tmp_path / "station.toml"
    map_file.write_text(MAP)
    return ModbusConfig(type="modbus", name="flood", port=port, map_file=str(map_file),
                        timeout_s=0.3, poll_interval_s=0.2, stale_after_s=1.0)


@pytest.mark.slow
def test_every_failing_register_is_named_with_its_count(sensor_sim, tmp_path) -> None:
    sim = sensor_sim("modbus", "--values", "water_level=143.2")
    config = _config(tmp_path, sim.link)
    poller = ModbusPoller(config, register_map(config))
    client = poller._client()
    assert client.connect()
    try:
        # Some registers answer: the cycle is dropped, and the reason names both others.
        # (Polled until the slave answers the four good ones: on a loaded machine its
        # first requests can time out.)
        wait_for(lambda: poller.poll_once(client) is None and (poller.last_problem or "")
                 .startswith("2 of 6"), 15, "the slave to answer the good registers")
        first = re.fullmatch(rf"2 of 6 registers failed: far, farther \({re.escape(EXC2)}\)"
                             r" x(\d+)", poller.last_problem or "")
        assert first, poller.last_problem
        assert poller.values is None
        poller.poll_once(client)
        n = int(first.group(1)) + 1
        assert poller.last_problem == f"2 of 6 registers failed: far, farther ({EXC2}) x{n}"

        # The slave falls silent: every request times out; the counts go on per register.
        # (Polled until the silence shows: on a loaded machine the signal takes a while.)
        sim.silence_toggle()
        wait_for(lambda: (poller.poll_once(client) or "").startswith("6 of 6"), 10,
                 "every register to time out")
        problem = poller.last_problem or ""
        found = re.fullmatch(r"6 of 6 registers failed: level, noise, rain, temperature "
                             r"\(timeout\) x(\d+), far, farther \(timeout\) x(\d+)", problem)
        assert found, problem
        assert int(found.group(2)) == int(found.group(1)) + n  # their n earlier failures
        assert "check A/B wiring" in poller.advice(problem)

        # It speaks again: the counts of the registers that answer start over.
        sim.silence_toggle()
        wait_for(lambda: poller.poll_once(client) is None
                 and poller.last_problem is not None
                 and "level" not in poller.last_problem, 10, "answers again")
        assert (poller.last_problem or "").startswith("2 of 6 registers failed: far, farther ")
        assert poller.request_errors >= 2 + 2 + 4 + 2
    finally:
        client.close()


@pytest.mark.slow
def test_the_status_reason_keeps_the_wiring_hint(sensor_sim, tmp_path) -> None:
    """Only some registers answer: the source goes unavailable, naming them, with advice."""
    sim = sensor_sim("modbus")
    collector = ModbusCollector(_config(tmp_path, sim.link))
    collector.start()
    try:
        box = {}

        def unavailable_with_counts() -> bool:
            acc = Accumulator()
            collector.gather(acc)
            box["source"] = acc.sources["flood"]
            return box["source"].state == "unavailable" and "x2" in (box["source"].reason or "")

        wait_for(unavailable_with_counts, 15, "flood to be unavailable")
        reason = box["source"].reason
        assert reason.startswith(f"2 of 6 registers failed: far, farther ({EXC2}) x")
        assert "check A/B wiring, baud 9600, parity N and the slave address" in reason
        assert "numbers and functions in the map" in reason
    finally:
        collector.close()
