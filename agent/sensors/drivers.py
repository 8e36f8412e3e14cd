"""Device drivers: turn a port's bytes into readings and send what each device needs.

Each driver wraps a pure framer from firmware_bridge in a StreamDecoder (which counts
ok frames, checksum errors, resyncs and dropped bytes) and knows its device's modes:
PMS active/passive (PMS5003, PMS7003, PMS5003T, PMS5003ST; the PMS3003 takes no
commands), SDS011 active/query, and the Simpul board's hello handshake.
"""

import logging
from typing import Any, Dict, List, Optional, Protocol

from agent.sensors.port import Driver
from firmware_bridge import board_protocol as bp
from firmware_bridge import pms, sds011
from firmware_bridge.errors import FrameError
from firmware_bridge.framing import LENGTH, Counters, Decoded, StreamDecoder

log = logging.getLogger(__name__)

# Re-send the mode command now and then: a sensor that lost power forgets it.
MODE_REFRESH_S = 60.0


def scale(raw: int, exponent: int) -> float:
    """raw * 10**exponent, dividing for negative exponents so 1234, -1 gives 123.4."""
    return raw / 10 ** -exponent if exponent < 0 else float(raw * 10**exponent)


class SerialDriver(Driver, Protocol):
    """What the serial collector and `simpul-agent sensor read` need beyond the port
    reader's part. Every driver has all of it (a driver with no board catalogue or
    board counters returns empty dicts), so nobody probes for an attribute by name."""

    hint: str  # baud and wiring, for a technician's "no readings" message
    mode_label: str  # how the device is driven: passive, query, board protocol

    def units(self) -> Dict[str, str]:
        """Units the device announces itself (a board's catalogue)."""

    def board_counters(self) -> Dict[str, float]:
        """Counters the device reports about itself, beyond the decoder's."""

    def problem(self) -> Optional[str]:
        """Why the device's frames were refused lately (e.g. another model's frames),
        for the "no readings" message; None when nothing was refused."""

    def implausible(self, values: Dict[str, float]) -> Optional[str]:
        """Why a reading is one the device cannot give (the source turns stale), or
        None."""


class _Base:
    name = "serial"
    baud = 9600
    hint = ""

    def __init__(self, poll_interval_s: float = 1.0, mode_label: str = "") -> None:
        self.poll_interval_s = poll_interval_s
        # How the device is driven, for a technician's "check the mode" hint.
        self.mode_label = mode_label
        self._next_poll = 0.0
        self._next_mode = 0.0

    def units(self) -> Dict[str, str]:
        """Units the device announces itself (a board's catalogue); fixed ones are in
        agent/sensors/catalogue.py."""
        return {}

    def board_counters(self) -> Dict[str, float]:
        """Counters the device reports about itself, beyond the decoder's."""
        return {}

    def problem(self) -> Optional[str]:
        return None

    def implausible(self, values: Dict[str, float]) -> Optional[str]:
        return None

    @property
    def counters(self) -> Counters:
        return self.decoder.counters

    decoder: StreamDecoder[Any]

    def reset(self) -> None:
        self.decoder.reset()
        self._next_poll = 0.0
        self._next_mode = 0.0


class Pms5003Driver(_Base):
    """Plantower PMS5003 / PMS7003 / PMS5003T / PMS5003ST / PMS3003 (`model`). Passive
    mode asks for each frame with the read command; the PMS3003 takes no commands."""

    name = "pms5003"
    baud = pms.BAUD
    hint = "9600 baud; sensor TX to adapter RX; 5 V supply with the fan spinning"

    def __init__(self, mode: str = "active", poll_interval_s: float = 1.0,
                 model: str = pms.DEFAULT_MODEL) -> None:
        super().__init__(poll_interval_s, mode)
        self.model = pms.model(model)
        self.passive = mode == "passive" and self.model.commands
        self.decoder = StreamDecoder(self._decode)
        self.refused = 0
        self._refused_why: Optional[str] = None

    def _decode(self, data: bytes) -> "Decoded[object]":
        """The framer's decode, refusing data frames of another model's length: they
        are dropped (counted as resyncs), and `problem()` says which model sent them."""
        result = pms.decode(data)
        frame = result.frame
        if isinstance(frame, pms.PmsReading) and frame.frame_len != self.model.frame_len:
            self.refused += 1
            self._refused_why = pms.wrong_model(frame.frame_len, self.model.name)
            return Decoded(result.used, None, LENGTH)
        return result

    def reset(self) -> None:
        super().reset()
        self.refused = 0
        self._refused_why = None

    def on_open(self, port: Any, now: float) -> None:
        if not self.model.commands:
            return
        port.write(pms.sleep_command(awake=True) + pms.mode_command(active=not self.passive))
        self._next_mode = now + MODE_REFRESH_S

    def poll(self, port: Any, now: float) -> None:
        if not self.model.commands:
            return
        if now >= self._next_mode:
            port.write(pms.mode_command(active=not self.passive))
            self._next_mode = now + MODE_REFRESH_S
        if self.passive and now >= self._next_poll:
            port.write(pms.read_command())
            self._next_poll = now + self.poll_interval_s

    def feed(self, data: bytes, port: Any, now: float) -> List[Dict[str, float]]:
        out = [f.values(self.model.name) for f in self.decoder.feed(data)
               if isinstance(f, pms.PmsReading)]
        if out:
            self._refused_why = None
        return out

    def problem(self) -> Optional[str]:
        if self._refused_why is None:
            return None
        return f"{self.refused} frames refused: {self._refused_why}"

    def implausible(self, values: Dict[str, float]) -> Optional[str]:
        return pms.implausible(values, self.model.name)


class Sds011Driver(_Base):
    """SDS011. Query mode asks for each measurement with the 19-byte query command."""

    name = "sds011"
    baud = sds011.BAUD
    hint = "9600 baud; sensor TX to adapter RX; 5 V supply"

    def __init__(self, mode: str = "active", poll_interval_s: float = 1.0) -> None:
        super().__init__(poll_interval_s, mode)
        self.query = mode == "query"
        self.decoder = StreamDecoder(sds011.decode)
        self.firmware: Optional[str] = None

    def on_open(self, port: Any, now: float) -> None:
        port.write(
            sds011.sleep_work_command(work=True)
            + sds011.reporting_mode_command(query=self.query)
            + sds011.firmware_command()
        )
        self._next_mode = now + MODE_REFRESH_S

    def poll(self, port: Any, now: float) -> None:
        if now >= self._next_mode:
            port.write(sds011.reporting_mode_command(query=self.query))
            self._next_mode = now + MODE_REFRESH_S
        if self.query and now >= self._next_poll:
            port.write(sds011.query_command())
            self._next_poll = now + self.poll_interval_s

    def feed(self, data: bytes, port: Any, now: float) -> List[Dict[str, float]]:
        out = []
        for frame in self.decoder.feed(data):
            if isinstance(frame, sds011.SdsReading):
                out.append(frame.values())
            elif isinstance(frame, sds011.SdsReply) and frame.command == sds011.CMD_FIRMWARE:
                year, month, day = frame.data
                self.firmware = f"20{year:02d}-{month:02d}-{day:02d}"
        return out


class BridgeDriver(_Base):
    """A Simpul sensor board: hello handshake, readings by catalogue, config, logs."""

    name = "bridge"
    baud = bp.BAUD
    hint = "115200 baud; board TX to adapter RX; firmware speaking the Simpul protocol"

    HELLO_RETRY_S = 2.0

    def __init__(self, report_interval_ms: Optional[int] = None) -> None:
        super().__init__(1.0, "board protocol")
        self.decoder = StreamDecoder(bp.decode, max_buffer=bp.MAX_ENCODED * 4)
        self.report_interval_ms = report_interval_ms
        self.version: Optional[int] = None
        self.hello: Optional[bp.Hello] = None
        self.channels: Dict[int, bp.Channel] = {}
        self.frames_lost = 0
        self.nacks = 0
        self.board_uptime_ms: Optional[int] = None
        self.board_rx_crc_errors: Optional[int] = None
        self._seq = 0
        self._last_seq: Optional[int] = None
        self._next_hello_request = 0.0

    def reset(self) -> None:
        super().reset()
        self.version = None
        self.hello = None
        self.channels = {}
        self._last_seq = None
        self._next_hello_request = 0.0

    def _send(self, port: Any, msg: object) -> int:
        seq = self._seq
        port.write(bp.encode(msg, seq, self.version or bp.VERSION_MIN))
        self._seq = (self._seq + 1) & 0xFF
        return seq

    def on_open(self, port: Any, now: float) -> None:
        # Each frame starts with a 0x00, which also flushes a half frame on the board.
        self._send(port, bp.HelloRequest())
        self._next_hello_request = now + self.HELLO_RETRY_S

    def poll(self, port: Any, now: float) -> None:
        if self.hello is None and now >= self._next_hello_request:
            self._send(port, bp.HelloRequest())
            self._next_hello_request = now + self.HELLO_RETRY_S

    def feed(self, data: bytes, port: Any, now: float) -> List[Dict[str, float]]:
        out = []
        for frame in self.decoder.feed(data):
            if self._last_seq is not None:
                self.frames_lost += bp.seq_gap(self._last_seq, frame.seq)
            self._last_seq = frame.seq
            try:
                msg = bp.parse(frame)
            except FrameError as exc:
                code = bp.NACK_UNKNOWN_TYPE if "unknown" in str(exc) else bp.NACK_BAD_PAYLOAD
                self._send(port, bp.Nack(frame.seq, code))
                continue
            values = self._handle(msg, frame, port)
            if values:
                out.append(values)
        return out

    def _handle(self, msg: object, frame: bp.BoardFrame, port: Any) -> Dict[str, float]:
        if isinstance(msg, bp.Hello):
            try:
                version = bp.negotiate(msg.proto_min, msg.proto_max)
            except FrameError as exc:
                log.warning("bridge: %s", exc)
                self._send(port, bp.Nack(frame.seq, bp.NACK_VERSION))
                return {}
            self.version, self.hello = version, msg
            self.channels = {c.channel: c for c in msg.channels}
            self._send(port, bp.HelloAck(version, bp.VERSION_MAX))
            if self.report_interval_ms is not None:
                self._send(port, bp.ConfigSet(bp.CONFIG_REPORT_INTERVAL_MS,
                                              self.report_interval_ms))
        elif isinstance(msg, bp.Reading):
            if self.hello is None:
                return {}  # no catalogue yet; poll() asks for a hello
            values = {}
            for channel, status, raw in msg.values:
                ch = self.channels.get(channel)
                if ch is not None and status == bp.STATUS_OK:
                    values[ch.name] = scale(raw, ch.exponent)
            return values
        elif isinstance(msg, bp.Heartbeat):
            self.board_uptime_ms = msg.uptime_ms
            self.board_rx_crc_errors = msg.rx_crc_errors
        elif isinstance(msg, bp.Nack):
            self.nacks += 1
            log.warning("bridge: board refused frame %d with code %d", msg.ref_seq, msg.code)
        elif isinstance(msg, bp.Log):
            log.info("bridge board: %s", msg.text)
        return {}

    def units(self) -> Dict[str, str]:
        return {c.name: c.unit for c in self.channels.values()}

    def board_counters(self) -> Dict[str, float]:
        out: Dict[str, float] = {"frames_lost": self.frames_lost}
        if self.board_rx_crc_errors is not None:
            out["board_rx_crc_errors"] = self.board_rx_crc_errors
        return out
