"""Streaming serial sensors: Plantower PMS5003/7003, Nova SDS011 and Simpul boards.

Each collector runs one reader thread on its port (agent/sensors/port.py); `gather`
hands over the latest reading in physical units, the port's counters, and a status:
`unavailable` while the port is gone or silent (never zero, never the old value),
`stale` when values stopped changing for `stuck_after_s`. Metrics are named
`<name>_<value>`; units are in agent/sensors/catalogue.py.

Sample config:

    [[collectors]]
    type = "pms5003"
    name = "air"
    port = "/dev/serial/by-id/usb-Silicon_Labs_CP2102-if00-port0"
    mode = "passive"

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
from typing import Any, Dict, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

from agent.collectors.base import Accumulator

NAME = r"^[a-z][a-z0-9_]{0,31}$"


class _SerialConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(default="sensor", pattern=NAME)
    stream: str = Field(default="telemetry", pattern=NAME)
    port: str = Field(min_length=1, description="device path or pyserial URL")
    poll_interval_s: float = Field(default=1.0, ge=0.1, le=3600)
    stale_after_s: float = Field(default=10.0, ge=0.5, le=86400)
    stuck_after_s: Optional[float] = Field(default=None, ge=1, le=7 * 86400)


class Pms5003Config(_SerialConfig):
    type: Literal["pms5003"]
    mode: Literal["active", "passive"] = "active"


class Sds011Config(_SerialConfig):
    type: Literal["sds011"]
    mode: Literal["active", "query"] = "active"


class BridgeConfig(_SerialConfig):
    type: Literal["bridge"]
    report_interval_ms: Optional[int] = Field(default=None, ge=100, le=3_600_000)


def make_driver(config: Any) -> Any:
    """The device driver for a config (also used by `simpul-agent sensor read`)."""
    from agent.sensors import drivers

    if config.type == "pms5003":
        return drivers.Pms5003Driver(config.mode, config.poll_interval_s)
    if config.type == "sds011":
        return drivers.Sds011Driver(config.mode, config.poll_interval_s)
    if config.type == "bridge":
        return drivers.BridgeDriver(config.report_interval_ms)
    raise ValueError(f"no serial driver for {config.type!r}")


def no_data_reason(port: str, seconds: float, driver: Any, counters: Any, mode: str) -> str:
    """What a technician should check when a port gives no readings."""
    if counters.bytes_in == 0:
        what = "no bytes at all"
    else:
        what = (f"{counters.bytes_in} bytes but no valid frame "
                f"({counters.checksum_errors} checksum errors, {counters.resyncs} resyncs)")
    return (f"no readings from {port} in {seconds:.0f} s: {what}; check the wiring "
            f"and supply, the baud rate ({driver.hint}), and the mode ({mode})")


class SerialSensorCollector:
    """A streaming collector around one PortReader."""

    def __init__(self, config: Any, driver: Any = None) -> None:
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

    def _counters(self, acc: Accumulator, age: Optional[float]) -> None:
        c = self.driver.counters
        acc.add(f"{self.name}_frames_ok", c.frames_ok)
        acc.add(f"{self.name}_checksum_errors", c.checksum_errors)
        acc.add(f"{self.name}_resyncs", c.resyncs)
        acc.add(f"{self.name}_bytes_dropped", c.bytes_dropped)
        if age is not None:
            acc.add(f"{self.name}_last_reading_age_s", age)
        for attr in ("frames_lost", "board_rx_crc_errors"):
            value = getattr(self.driver, attr, None)
            if value is not None:
                acc.add(f"{self.name}_{attr}", value)

    def gather(self, acc: Accumulator) -> None:
        now = time.monotonic()
        if self._reader is None:
            acc.status(self.name, "unavailable", "collector not started")
            return
        with self._reader.lock:
            state = self._reader.state
            connected, reason = state.connected, state.reason
            values = dict(state.last_values) if state.last_values else None
            last_at, opened_at = state.last_reading_at, state.opened_at
        age = None if last_at is None else now - last_at
        self._counters(acc, age)
        if not connected:
            acc.status(self.name, "unavailable", reason or "port closed")
            return
        since = max(t for t in (last_at, opened_at, self._started_at) if t is not None)
        if values is None or age is None or age > self.config.stale_after_s:
            silent = now - since
            if silent <= self.config.stale_after_s:
                acc.status(self.name, "unavailable", "port open, waiting for a reading")
            else:
                acc.status(self.name, "unavailable", no_data_reason(
                    self.config.port, silent, self.driver, self.driver.counters,
                    getattr(self.config, "mode", "board protocol")))
            return
        if values != self._last_values:
            self._last_values, self._changed_at = values, now
        for key, value in values.items():
            acc.add(f"{self.name}_{key}", value)
        stuck = self.config.stuck_after_s
        if stuck is not None and now - self._changed_at > stuck:
            acc.status(self.name, "stale", f"values unchanged for {now - self._changed_at:.0f} s")
        else:
            acc.status(self.name, "ok")
