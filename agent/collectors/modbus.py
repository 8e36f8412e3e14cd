"""Register-mapped sensors on Modbus RTU (RS485), through pymodbus.

One poll thread per port reads every register of the map each `poll_interval_s`.
A cycle where every request fails closes the port and reopens it with backoff, so an
unplugged USB-RS485 adapter shows `unavailable` (with the reason) and readings resume
when it comes back. Values are physical: raw * scale + offset, in the map's unit.

Sample config:

    [[collectors]]
    type = "modbus"
    name = "flood"
    port = "/dev/serial/by-id/usb-FTDI_FT232R_USB_UART_A10K-if00-port0"
    baud = 9600
    parity = "N"
    map_file = "/etc/simpul/maps/water-level.toml"

    [[collectors]]
    type = "modbus"
    name = "noise"
    port = "/dev/ttyUSB1"
    registers = [
        { name = "noise", address = 2, register = 0, function = "input", scale = 0.1, unit = "dB" },
    ]
"""

import inspect
import logging
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Literal, Optional

from pydantic import Field, model_validator

from agent.collectors.base import Accumulator
from agent.collectors.serial_sensors import _SerialConfig
from agent.errors import CollectorError
from firmware_bridge.errors import RegisterMapError
from firmware_bridge.modbus_map import (
    ReadBlock,
    Register,
    RegisterMap,
    parse_register_map,
    plan_reads,
)

BACKOFF_START_S = 0.25
BACKOFF_MAX_S = 10.0


class ModbusConfig(_SerialConfig):
    type: Literal["modbus"]
    baud: int = Field(default=9600, ge=1200, le=115200)
    parity: Literal["N", "E", "O"] = "N"
    timeout_s: float = Field(default=0.5, ge=0.05, le=10)
    map_file: Optional[str] = None
    registers: Optional[List[Register]] = None

    @model_validator(mode="after")
    def _one_map(self) -> "ModbusConfig":
        if (self.map_file is None) == (self.registers is None):
            raise ValueError("give exactly one of map_file and registers")
        return self

    def register_map(self) -> RegisterMap:
        """The map (reads map_file: call from start(), not during validation)."""
        if self.registers is not None:
            return RegisterMap(registers=self.registers)
        assert self.map_file is not None
        try:
            text = Path(self.map_file).read_text(encoding="utf-8")
        except OSError as exc:
            raise CollectorError(f"{self.map_file}: cannot read: {exc.strerror}") from exc
        try:
            return parse_register_map(text, self.map_file)
        except RegisterMapError as exc:
            raise CollectorError(str(exc)) from exc


def _read(client: Any, block: ReadBlock) -> Any:
    fn = (client.read_holding_registers if block.function == "holding"
          else client.read_input_registers)
    # pymodbus 3.10+ names the unit `device_id`; older ones (on Python 3.9) `slave`.
    unit_kw = "device_id" if "device_id" in inspect.signature(fn).parameters else "slave"
    return fn(block.start, count=block.count, **{unit_kw: block.address})


class ModbusPoller:
    """The poll thread's state; shared with gather() under `lock`."""

    def __init__(self, config: ModbusConfig, regmap: RegisterMap) -> None:
        self.config = config
        self.regmap = regmap
        self.blocks = plan_reads(regmap)  # contiguous registers share one request
        self.lock = threading.Lock()
        self.connected = False
        self.reason: Optional[str] = "not opened yet"
        self.values: Optional[Dict[str, float]] = None
        self.last_reading_at: Optional[float] = None
        self.opened_at: Optional[float] = None
        self.frames_ok = 0
        self.request_errors = 0
        self.last_problem: Optional[str] = None
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="modbus", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=3.0)

    def _client(self) -> Any:
        from pymodbus.client import ModbusSerialClient

        logging.getLogger("pymodbus").setLevel(logging.CRITICAL)  # we report it ourselves
        return ModbusSerialClient(
            self.config.port, baudrate=self.config.baud, parity=self.config.parity,
            timeout=self.config.timeout_s, retries=0,
        )

    def poll_once(self, client: Any) -> Optional[str]:
        """Read every register once; returns why nothing answered, or None.

        Like a frame with a bad checksum, a cycle where only some registers answered
        is dropped whole: the last complete reading stands until it goes stale.
        """
        values: Dict[str, float] = {}
        problem = None
        answered = 0
        for block in self.blocks:
            try:
                reply = _read(client, block)
            except Exception as exc:  # pymodbus raises several types for a dead line
                reply, problem = None, f"{block.registers[0].name}: {exc}"
            if reply is None or reply.isError():
                with self.lock:
                    self.request_errors += 1
                problem = problem or (f"slave {block.address} did not answer "
                                      f"{block.function} register {block.start}")
                continue
            values.update(block.values(reply.registers[: block.count]))
            answered += 1
        now = time.monotonic()
        with self.lock:
            self.frames_ok += answered
            self.last_problem = problem
            if problem is None:
                self.values, self.last_reading_at = values, now
        return problem if not values else None

    def _run(self) -> None:
        backoff = BACKOFF_START_S
        while not self._stop.is_set():
            client = self._client()
            if not client.connect():
                with self.lock:
                    self.connected = False
                    self.reason = f"cannot open {self.config.port}"
                self._stop.wait(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_S)
                continue
            with self.lock:
                self.connected, self.reason, self.opened_at = True, None, time.monotonic()
            backoff = BACKOFF_START_S
            while not self._stop.is_set():
                started = time.monotonic()
                problem = self.poll_once(client)
                if problem is not None:
                    with self.lock:
                        self.connected = False
                        self.reason = (f"{problem}; check A/B wiring, baud {self.config.baud}, "
                                       f"parity {self.config.parity} and the slave address")
                    break  # reopen: the adapter may have been unplugged
                spent = time.monotonic() - started
                self._stop.wait(max(0.0, self.config.poll_interval_s - spent))
            client.close()
            self._stop.wait(backoff)


class ModbusCollector:
    def __init__(self, config: ModbusConfig) -> None:
        self.name = config.name
        self.stream = config.stream
        self.config = config
        self.poller: Optional[ModbusPoller] = None

    def start(self) -> None:
        self.poller = ModbusPoller(self.config, self.config.register_map())
        self.poller.start()

    def close(self) -> None:
        if self.poller is not None:
            self.poller.close()

    def units(self) -> Dict[str, str]:
        regmap = self.poller.regmap if self.poller else self.config.register_map()
        return {f"{self.name}_{k}": v for k, v in regmap.units().items()}

    def gather(self, acc: Accumulator) -> None:
        if self.poller is None:
            raise CollectorError("modbus collector not started")
        p, now = self.poller, time.monotonic()
        with p.lock:
            connected, reason, values, problem = p.connected, p.reason, p.values, p.last_problem
            last_at, frames_ok, errors = p.last_reading_at, p.frames_ok, p.request_errors
        acc.add(f"{self.name}_frames_ok", frames_ok)
        acc.add(f"{self.name}_request_errors", errors)
        if last_at is not None:
            acc.add(f"{self.name}_last_reading_age_s", now - last_at)
        if not connected:
            acc.status(self.name, "unavailable", reason or "port closed")
        elif values is None or last_at is None or now - last_at > self.config.stale_after_s:
            acc.status(self.name, "unavailable", problem or "port open, waiting for a reading")
        else:
            for key, value in values.items():
                acc.add(f"{self.name}_{key}", value)
            acc.status(self.name, "ok")
