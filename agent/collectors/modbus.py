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
from typing import Any, Dict, List, Optional, Tuple

from agent.collectors.base import Accumulator
from agent.errors import CollectorError
from firmware_bridge.errors import RegisterMapError
from firmware_bridge.modbus_map import (
    ReadBlock,
    RegisterMap,
    parse_register_map,
    plan_reads,
    rtu_response_at,
)
from simpul_wire.config.sensors import ModbusConfig

BACKOFF_START_S = 0.25
BACKOFF_MAX_S = 10.0


def register_map(config: ModbusConfig) -> RegisterMap:
    """The collector's map: its inline registers, or its map_file read and parsed (call
    from start(), not during validation: the config schema does no I/O)."""
    if config.registers is not None:
        return RegisterMap(registers=config.registers)
    assert config.map_file is not None
    try:
        text = Path(config.map_file).read_text(encoding="utf-8")
    except OSError as exc:
        raise CollectorError(f"{config.map_file}: cannot read: {exc.strerror}") from exc
    try:
        return parse_register_map(text, config.map_file)
    except RegisterMapError as exc:
        raise CollectorError(str(exc)) from exc


def _read(client: Any, block: ReadBlock) -> Any:
    fn = (client.read_holding_registers if block.function == "holding"
          else client.read_input_registers)
    # pymodbus 3.10+ names the unit `device_id`; older ones (on Python 3.9) `slave`.
    unit_kw = "device_id" if "device_id" in inspect.signature(fn).parameters else "slave"
    return fn(block.start, count=block.count, **{unit_kw: block.address})


# Modbus exception codes (the slave answered, but refused the request).
EXCEPTION_NAMES = {
    1: "illegal function", 2: "illegal data address", 3: "illegal data value",
    4: "slave device failure", 5: "acknowledge", 6: "slave device busy",
    8: "memory parity error", 10: "gateway path unavailable",
    11: "gateway target did not respond",
}


def _why(reply: Any) -> Optional[str]:
    """Why one read failed, in a few words; None when it answered."""
    if isinstance(reply, BaseException):  # older pymodbus returns its exceptions
        name = type(reply).__name__
        if name == "ModbusIOException":
            return "timeout"
        if name == "ConnectionException":
            return "port lost"
        text = str(reply).replace("Modbus Error: ", "").strip()
        return f"{name}: {text}" if text else name
    if reply is None:
        return "timeout"
    if not reply.isError():
        return None
    code = getattr(reply, "exception_code", None)
    if isinstance(code, int) and code > 0:
        meaning = EXCEPTION_NAMES.get(code)
        return f"exception {code}, {meaning}" if meaning else f"exception {code}"
    return "timeout"


def describe_failures(failed: Dict[str, str], streaks: Dict[str, int], total: int) -> str:
    """'2 of 5 registers failed: level, rain (timeout) x3, temp (exception 2, ...) x1'.

    `failed` maps each register that failed in the last poll to why, in map order;
    xN is how many polls in a row it has failed. Registers with the same reason and
    count are named together.
    """
    groups: Dict[Tuple[str, int], List[str]] = {}
    for name, why in failed.items():
        groups.setdefault((why, streaks.get(name, 1)), []).append(name)
    parts = [f"{', '.join(names)} ({why}) x{count}" for (why, count), names in groups.items()]
    noun = "register" if total == 1 else "registers"
    return f"{len(failed)} of {total} {noun} failed: " + ", ".join(parts)


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
        self.last_problem: Optional[str] = None  # what failed in the last poll, or None
        self.streaks: Dict[str, int] = {}  # register -> polls in a row it has failed
        self.resyncs = 0
        self.bytes_dropped = 0
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="modbus", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=3.0)

    def _trace(self, sending: bool, data: bytes) -> bytes:
        """pymodbus hook on raw bytes: skip noise before a slave's response, which
        pymodbus's RTU framer does not resync past by itself."""
        if sending:
            return data
        at = rtu_response_at(data)
        if at > 0:
            with self.lock:
                self.bytes_dropped += at
                self.resyncs += 1
            return data[at:]
        return data

    def _client(self) -> Any:
        from pymodbus.client import ModbusSerialClient

        logging.getLogger("pymodbus").setLevel(logging.CRITICAL)  # we report it ourselves
        extra: Dict[str, Any] = {}
        if "trace_packet" in inspect.signature(ModbusSerialClient.__init__).parameters:
            extra["trace_packet"] = self._trace
        return ModbusSerialClient(
            self.config.port, baudrate=self.config.baud, parity=self.config.parity,
            timeout=self.config.timeout_s, retries=0, **extra,
        )

    def poll_once(self, client: Any) -> Optional[str]:
        """Read every register once; returns why nothing answered, or None.

        Like a frame with a bad checksum, a cycle where only some registers answered
        is dropped whole: the last complete reading stands until it goes stale.
        `last_problem` names every register that failed, why, and for how many polls
        in a row (see describe_failures); it carries no advice (see `advice`).
        """
        values: Dict[str, float] = {}
        failed: Dict[str, str] = {}
        answered = 0
        for block in self.blocks:
            try:
                reply = _read(client, block)
            except Exception as exc:  # pymodbus raises several types for a dead line
                reply = exc
            why = _why(reply)
            if why is not None:
                with self.lock:
                    self.request_errors += 1
                for reg in block.registers:
                    failed[reg.name] = why
                continue
            values.update(block.values(reply.registers[: block.count]))
            answered += 1
        total = sum(len(block.registers) for block in self.blocks)
        now = time.monotonic()
        with self.lock:
            for reg in (r for block in self.blocks for r in block.registers):
                if reg.name in failed:
                    self.streaks[reg.name] = self.streaks.get(reg.name, 0) + 1
                else:
                    self.streaks.pop(reg.name, None)
            problem = describe_failures(failed, self.streaks, total) if failed else None
            self.frames_ok += answered
            self.last_problem = problem
            if problem is None:
                self.values, self.last_reading_at = values, now
        return problem if not values else None

    def advice(self, problem: str) -> str:
        """`problem` with what to check on site, for the source's status reason."""
        text = (f"{problem}; check A/B wiring, baud {self.config.baud}, "
                f"parity {self.config.parity} and the slave address")
        if "(exception " in problem:
            text += ("; an exception is the slave's own answer: check those registers' "
                     "numbers and functions in the map")
        return text

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
                        self.reason = self.advice(problem)
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
        self.poller = ModbusPoller(self.config, register_map(self.config))
        self.poller.start()

    def close(self) -> None:
        if self.poller is not None:
            self.poller.close()

    def units(self) -> Dict[str, str]:
        """Metric catalogue of this collector: full metric name -> unit."""
        from agent.sensors.catalogue import metric_units

        regmap = self.poller.regmap if self.poller else register_map(self.config)
        return metric_units(self.name, "modbus", regmap.units())

    def _assess(self, acc: Accumulator, counters: bool) -> Optional[Dict[str, float]]:
        if self.poller is None:
            raise CollectorError("modbus collector not started")
        p, now = self.poller, time.monotonic()
        with p.lock:
            connected, reason, values, problem = p.connected, p.reason, p.values, p.last_problem
            last_at, frames_ok, errors = p.last_reading_at, p.frames_ok, p.request_errors
            resyncs, dropped = p.resyncs, p.bytes_dropped
        if counters:
            acc.add(f"{self.name}_frames_ok", frames_ok)
            acc.add(f"{self.name}_request_errors", errors)
            acc.add(f"{self.name}_resyncs", resyncs)
            acc.add(f"{self.name}_bytes_dropped", dropped)
            if last_at is not None:
                acc.add(f"{self.name}_last_reading_age_s", now - last_at)
        if not connected:
            acc.status(self.name, "unavailable", reason or "port closed")
        elif values is None or last_at is None or now - last_at > self.config.stale_after_s:
            acc.status(self.name, "unavailable",
                       p.advice(problem) if problem else "port open, waiting for a reading")
        else:
            acc.status(self.name, "ok")
            return values
        return None

    def gather(self, acc: Accumulator) -> None:
        """The values in physical units, and the source's status."""
        for key, value in (self._assess(acc, counters=False) or {}).items():
            acc.add(f"{self.name}_{key}", value)

    def gather_health(self, acc: Accumulator) -> None:
        """Answered and failed requests, age of the last reading, and the status."""
        self._assess(acc, counters=True)
