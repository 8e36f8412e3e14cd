"""Streaming serial sensors: Plantower PMS5003/7003/5003T/5003ST/3003, Nova SDS011 and
Simpul boards.

Each collector runs one reader thread on its port (agent/sensors/port.py); `gather`
hands over the latest reading in physical units and a status, and `gather_health` the
port's counters (frames ok, checksum errors, resyncs, bytes dropped, age of the last
reading) and the same status, for the health stream. The status is
`unavailable` while the port is gone or silent (never zero, never the old value),
`stale` when values stopped changing for `stuck_after_s` or are impossible for the
device (a PMS whose particle counts rise with size: a PMS5003T configured as a
PMS5003), with the reason. A PMS's `model` (default pms5003; pms7003, pms5003t,
pms5003st, pms3003) says which words its frames carry; frames of another model's
length are refused, and the "no readings" reason names the model they match. Metrics
are named `<name>_<value>`; units are in agent/sensors/catalogue.py.

Sample config:

    [[collectors]]
    type = "pms5003"
    name = "air"
    port = "/dev/serial/by-id/usb-Silicon_Labs_CP2102-if00-port0"
    mode = "passive"

    [[collectors]]
    type = "pms5003"
    model = "pms5003t"
    name = "air_th"
    port = "/dev/ttyUSB1"

    [[collectors]]
    type = "sds011"
    name = "air2"
    port = "/dev/ttyAMA0"
    mode = "query"
    poll_interval_s = 5.0

    [[collectors]]
    type = "bridge"
    name = "board"
    port = "/dev/serial/by-id/usb-simpul_board-if00"
    report_interval_ms = 1000
"""

import time
from typing import TYPE_CHECKING, Any, Dict, Optional, Tuple

from agent.collectors.base import Accumulator

if TYPE_CHECKING:
    from agent.sensors.drivers import SerialDriver
    from firmware_bridge.framing import Counters


def make_driver(config: Any) -> "SerialDriver":
    """The device driver for a config (also used by `simpul-agent sensor read`)."""
    from agent.sensors import drivers

    if config.type == "pms5003":
        return drivers.Pms5003Driver(config.mode, config.poll_interval_s, config.model)
    if config.type == "sds011":
        return drivers.Sds011Driver(config.mode, config.poll_interval_s)
    if config.type == "bridge":
        return drivers.BridgeDriver(config.report_interval_ms)
    raise ValueError(f"no serial driver for {config.type!r}")


def no_data_reason(port: str, seconds: float, driver: "SerialDriver",
                   counters: "Counters") -> str:
    """What a technician should check when a port gives no readings."""
    problem = driver.problem()
    if problem is not None:
        return f"no readings from {port} in {seconds:.0f} s: {problem}"
    if counters.bytes_in == 0:
        what = "no bytes at all"
    else:
        what = (f"{counters.bytes_in} bytes but no valid frame "
                f"({counters.checksum_errors} checksum errors, {counters.resyncs} resyncs)")
    return (f"no readings from {port} in {seconds:.0f} s: {what}; check the wiring "
            f"and supply, the baud rate ({driver.hint}), and the mode ({driver.mode_label})")


class SerialSensorCollector:
    """A streaming collector around one PortReader."""

    def __init__(self, config: Any, driver: "Optional[SerialDriver]" = None) -> None:
        self.name: str = config.name
        self.stream: str = config.stream
        self.config = config
        self.driver = driver if driver is not None else make_driver(config)
        self._reader: Any = None
        self._started_at = time.monotonic()
        self._last_values: Optional[Dict[str, float]] = None
        self._changed_at = self._started_at

    def start(self) -> None:
        from agent.sensors.port import PortReader

        self._started_at = time.monotonic()
        self._reader = PortReader(self.config.port, self.driver)
        self._reader.start()

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()

    def units(self) -> Dict[str, str]:
        """Metric catalogue of this collector: full metric name -> unit."""
        from agent.sensors.catalogue import metric_units

        model = self.config.model if self.config.type == "pms5003" else None
        return metric_units(self.name, self.config.type, self.driver.units(), model)

    def _counters(self, acc: Accumulator, age: Optional[float]) -> None:
        c = self.driver.counters
        acc.add(f"{self.name}_frames_ok", c.frames_ok)
        acc.add(f"{self.name}_checksum_errors", c.checksum_errors)
        acc.add(f"{self.name}_resyncs", c.resyncs)
        acc.add(f"{self.name}_bytes_dropped", c.bytes_dropped)
        if age is not None:
            acc.add(f"{self.name}_last_reading_age_s", age)
        for key, value in self.driver.board_counters().items():
            acc.add(f"{self.name}_{key}", value)

    def _assess(self, now: float) -> Tuple[str, Optional[str], Optional[Dict[str, float]],
                                            Optional[float]]:
        """(state, reason, values to publish, age of the last reading)."""
        if self._reader is None:
            return "unavailable", "collector not started", None, None
        with self._reader.lock:
            state = self._reader.state
            connected, reason = state.connected, state.reason
            values = dict(state.last_values) if state.last_values else None
            last_at, opened_at = state.last_reading_at, state.opened_at
        age = None if last_at is None else now - last_at
        if not connected:
            return "unavailable", reason or "port closed", None, age
        since = max(t for t in (last_at, opened_at, self._started_at) if t is not None)
        if values is None or age is None or age > self.config.stale_after_s:
            silent = now - since
            if silent <= self.config.stale_after_s:
                return "unavailable", "port open, waiting for a reading", None, age
            return "unavailable", no_data_reason(
                self.config.port, silent, self.driver, self.driver.counters), None, age
        if values != self._last_values:
            self._last_values, self._changed_at = values, now
        impossible = self.driver.implausible(values)
        if impossible is not None:
            return "stale", impossible, values, age
        stuck = self.config.stuck_after_s
        if stuck is not None and now - self._changed_at > stuck:
            return "stale", f"values unchanged for {now - self._changed_at:.0f} s", values, age
        return "ok", None, values, age

    def gather(self, acc: Accumulator) -> None:
        """The values in physical units, and the source's status."""
        state, reason, values, _age = self._assess(time.monotonic())
        for key, value in (values or {}).items():
            acc.add(f"{self.name}_{key}", value)
        acc.status(self.name, state, reason)  # type: ignore[arg-type]

    def gather_health(self, acc: Accumulator) -> None:
        """The port's counters and the source's status, for the health stream."""
        state, reason, _values, age = self._assess(time.monotonic())
        self._counters(acc, age)
        acc.status(self.name, state, reason)  # type: ignore[arg-type]
