"""Virtual devices: what each sensor sends, and how it answers commands.

A device is pure logic over bytes and a clock: `on_bytes` takes what the host wrote
and returns whole frames to send back; `tick` returns the frames due by `now`. The
runner (runner.py) moves them across the pty and applies faults.
"""

import math
from typing import Dict, List, Optional, Tuple, Type

from firmware_bridge import board_protocol as bp
from firmware_bridge import pms, sds011
from firmware_bridge.framing import StreamDecoder


class Values:
    """The physical values a device reports: fixed, or drifting gently around a base."""

    def __init__(self, base: Dict[str, float], vary: bool) -> None:
        self.base = dict(base)
        self.vary = vary
        self.stuck = False
        self._frozen: Optional[Dict[str, float]] = None

    def now(self, t: float) -> Dict[str, float]:
        if self.stuck:
            if self._frozen is None:
                self._frozen = self._at(t)
            return dict(self._frozen)
        self._frozen = None
        return self._at(t)

    def _at(self, t: float) -> Dict[str, float]:
        if not self.vary:
            return dict(self.base)
        return {k: round(v * (1 + 0.1 * math.sin(t / 7.0 + i)), 1)
                for i, (k, v) in enumerate(self.base.items())}


class Device:
    driver = "device"
    defaults: Dict[str, float] = {}

    def __init__(self, values: Values, interval_s: float = 1.0) -> None:
        self.values = values
        self.interval_s = interval_s
        self._next = 0.0

    def start(self, now: float) -> List[bytes]:
        """Frames sent when the device powers up (plugged in)."""
        self._next = now
        return []

    def on_bytes(self, data: bytes, now: float) -> List[bytes]:
        return []

    def tick(self, now: float) -> List[bytes]:
        if now < self._next:
            return []
        self._next = max(self._next + self.interval_s, now)
        return self.periodic(now)

    def periodic(self, now: float) -> List[bytes]:
        return []


class PmsDevice(Device):
    """A Plantower PMS of any `model` (pms.MODELS): its frame length and words; the
    PMS3003 ignores commands and always sends (active mode only)."""

    driver = "pms5003"
    defaults = {"pm1_0": 8.0, "pm2_5": 12.0, "pm10": 20.0,
                "temperature": 21.2, "humidity": 55.0, "formaldehyde": 12.0}

    def __init__(self, values: Values, interval_s: float = 1.0,
                 model: str = pms.DEFAULT_MODEL) -> None:
        super().__init__(values, interval_s)
        self.model = pms.model(model)
        self.active = True
        self.awake = True
        self.commands = StreamDecoder(pms.decode_command)

    def frame(self, now: float) -> bytes:
        v = self.values.now(now)
        pm = [round(v.get(k, 0.0)) for k in ("pm1_0", "pm2_5", "pm10")]
        counts = [pm[0] * 150, pm[0] * 45, pm[1] * 8, pm[1], pm[2] // 4, pm[2] // 10]
        for i in range(len(counts) - 2, -1, -1):  # beyond a smaller size: never fewer
            counts[i] = max(counts[i], counts[i + 1])
        words: Dict[str, float] = dict(zip(pms.FIELDS, pm + pm + counts))
        words.update({k: v[k] for k in ("temperature", "humidity", "formaldehyde") if k in v})
        return pms.encode_values(words, self.model.name, reserved=0x9100)

    def on_bytes(self, data: bytes, now: float) -> List[bytes]:
        out: List[bytes] = []
        if not self.model.commands:
            return out
        for command, arg in self.commands.feed(data):
            if command == pms.CMD_READ and self.awake and not self.active:
                out.append(self.frame(now))
            elif command == pms.CMD_MODE:
                self.active = arg == pms.MODE_ACTIVE
                out.append(pms.encode_answer(command, arg & 0xFF))
            elif command == pms.CMD_SLEEP:
                self.awake = arg == 1
                out.append(pms.encode_answer(command, arg & 0xFF))
        return out

    def periodic(self, now: float) -> List[bytes]:
        return [self.frame(now)] if self.active and self.awake else []


class SdsDevice(Device):
    driver = "sds011"
    defaults = {"pm2_5": 12.3, "pm10": 20.1}
    DEVICE_ID = 0xA160
    FIRMWARE = (15, 7, 10)  # the datasheet's 2015-07-10

    def __init__(self, values: Values, interval_s: float = 1.0) -> None:
        super().__init__(values, interval_s)
        self.query_mode = False
        self.working = True
        self.period_min = 0
        self.commands = StreamDecoder(sds011.decode_command)

    def frame(self, now: float) -> bytes:
        v = self.values.now(now)
        return sds011.encode_reading(round(v.get("pm2_5", 0) * 10),
                                     round(v.get("pm10", 0) * 10), self.DEVICE_ID)

    def _reply(self, command: int, b3: int, b4: int = 0) -> bytes:
        return sds011.encode_reply(command, (b3, b4, 0), self.DEVICE_ID)

    def on_bytes(self, data: bytes, now: float) -> List[bytes]:
        out = []
        for cmd in self.commands.feed(data):
            if cmd.device_id not in (sds011.ALL_SENSORS, self.DEVICE_ID):
                continue
            if cmd.command == sds011.CMD_QUERY:
                if self.working:
                    out.append(self.frame(now))
                continue
            if cmd.command == sds011.CMD_FIRMWARE:
                out.append(sds011.encode_reply(cmd.command, self.FIRMWARE, self.DEVICE_ID))
                continue
            setting = cmd.d1 == 1
            if cmd.command == sds011.CMD_REPORTING_MODE:
                self.query_mode = cmd.d2 == 1 if setting else self.query_mode
                out.append(self._reply(cmd.command, cmd.d1, int(self.query_mode)))
            elif cmd.command == sds011.CMD_SLEEP_WORK:
                self.working = cmd.d2 == 1 if setting else self.working
                out.append(self._reply(cmd.command, cmd.d1, int(self.working)))
            elif cmd.command == sds011.CMD_WORKING_PERIOD:
                self.period_min = cmd.d2 if setting else self.period_min
                out.append(self._reply(cmd.command, cmd.d1, self.period_min))
        return out

    def periodic(self, now: float) -> List[bytes]:
        return [self.frame(now)] if self.working and not self.query_mode else []


class BoardDevice(Device):
    """A Simpul sensor board: hello until acknowledged, readings, heartbeats, config."""

    driver = "bridge"
    defaults = {"temperature": 29.5, "humidity": 78.0, "water_level": 120.0, "noise": 55.0}
    CHANNELS = (
        bp.Channel(0, 1, -1, "temperature"),
        bp.Channel(1, 2, -1, "humidity"),
        bp.Channel(2, 4, -1, "water_level"),
        bp.Channel(3, 5, -1, "noise"),
    )
    HEARTBEAT_S = 5.0

    def __init__(self, values: Values, interval_s: float = 1.0,
                 proto: Tuple[int, int] = (bp.VERSION_MIN, bp.VERSION_MAX)) -> None:
        super().__init__(values, interval_s)
        self.proto = proto
        self.decoder = StreamDecoder(bp.decode)
        self.seq = 0
        self.version: Optional[int] = None
        self.boot = 0.0
        self.next_heartbeat = 0.0
        self.config = {bp.CONFIG_REPORT_INTERVAL_MS: int(interval_s * 1000),
                       bp.CONFIG_HEARTBEAT_INTERVAL_MS: int(self.HEARTBEAT_S * 1000),
                       bp.CONFIG_CHANNEL_MASK: 0x0F}

    def send(self, msg: object) -> bytes:
        frame = bp.encode(msg, self.seq, self.version or bp.VERSION_MIN)
        self.seq = (self.seq + 1) & 0xFF
        return frame

    def hello(self) -> bytes:
        return self.send(bp.Hello(self.proto[0], self.proto[1], b"SIMPUL01", (1, 2, 0),
                                  self.CHANNELS))

    def start(self, now: float) -> List[bytes]:
        super().start(now)
        self.boot, self.version, self.seq = now, None, 0
        self.decoder.reset()
        self.next_heartbeat = now + self.HEARTBEAT_S
        return [self.send(bp.Log(bp.LOG_INFO, "boot")), self.hello()]

    def on_bytes(self, data: bytes, now: float) -> List[bytes]:
        out = []
        for frame in self.decoder.feed(data):
            try:
                msg = bp.parse(frame)
            except Exception:  # a board answers anything it cannot parse with a NACK
                out.append(self.send(bp.Nack(frame.seq, bp.NACK_BAD_PAYLOAD)))
                continue
            if isinstance(msg, bp.HelloRequest):
                out.append(self.hello())
            elif isinstance(msg, bp.HelloAck):
                self.version = msg.version
            elif isinstance(msg, bp.ConfigGet):
                out.append(self._config_reply(frame.seq, msg.key, None))
            elif isinstance(msg, bp.ConfigSet):
                out.append(self._config_reply(frame.seq, msg.key, msg.value))
        return out

    def _config_reply(self, ref: int, key: int, value: Optional[int]) -> bytes:
        if key not in self.config:
            return self.send(bp.Nack(ref, bp.NACK_UNKNOWN_KEY))
        if value is not None:
            if key == bp.CONFIG_REPORT_INTERVAL_MS and not 100 <= value <= 3_600_000:
                return self.send(bp.Nack(ref, bp.NACK_BAD_VALUE))
            self.config[key] = value
            if key == bp.CONFIG_REPORT_INTERVAL_MS:
                self.interval_s = value / 1000.0
        return self.send(bp.Ack(ref, key, self.config[key]))

    def periodic(self, now: float) -> List[bytes]:
        uptime = int((now - self.boot) * 1000) & 0xFFFFFFFF
        if self.version is None:
            return [self.hello()]
        v = self.values.now(now)
        readings = tuple((c.channel, bp.STATUS_OK, round(v.get(c.name, 0.0) * 10))
                         for c in self.CHANNELS)
        out = [self.send(bp.Reading(uptime, readings))]
        if now >= self.next_heartbeat:
            self.next_heartbeat = now + self.HEARTBEAT_S
            out.append(self.send(bp.Heartbeat(uptime, self.decoder.counters.checksum_errors)))
        return out


DEVICES: Dict[str, Type[Device]] = {"pms5003": PmsDevice, "sds011": SdsDevice,
                                    "bridge": BoardDevice}
