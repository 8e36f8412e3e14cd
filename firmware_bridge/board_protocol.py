"""The Simpul sensor board protocol: constants, message layouts, framing (stable).

This module is the reference for board firmware (AVR) and the host; docs/firmware-bridge.md
draws the same layout. Change it only by adding: a new protocol version may append
fields at the end of a payload and add message types; it never moves a field.

On the wire (115200 8N1 by default) every frame is COBS-encoded between two 0x00::

    00 COBS( ver | type | seq | payload ... | crc_lo crc_hi ) 00

The leading 0x00 ends whatever line noise came before, so each frame is found even
on a noisy line; back-to-back frames simply show two delimiters.

    ver      u8   protocol version of this frame (1); HELLO always goes as version 1
    type     u8   message type (MSG_*)
    seq      u8   sender's own counter, +1 per frame sent, wraps 255 -> 0
    payload  0..MAX_PAYLOAD bytes, little-endian integers
    crc      u16  CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no xor)
                  over ver..payload, little-endian; avr-libc: _crc_xmodem_update from 0xFFFF

A body is at most 252 bytes, so a COBS frame plus its delimiters fits 255 bytes.
"""

import struct
from dataclasses import dataclass
from typing import Dict, List, Tuple

import crcmod.predefined
from cobs import cobs

from firmware_bridge.errors import FrameError
from firmware_bridge.framing import CHECKSUM, LENGTH, RESYNC, Decoded, StreamDecoder

VERSION_MIN = 1
VERSION_MAX = 1
DELIMITER = 0x00
BAUD = 115200
HEADER_LEN = 3
CRC_LEN = 2
MAX_PAYLOAD = 247
MAX_BODY = HEADER_LEN + MAX_PAYLOAD + CRC_LEN  # 252
MAX_ENCODED = MAX_BODY + 1  # COBS adds one byte per 254

MSG_HELLO = 0x01          # board -> host
MSG_HELLO_ACK = 0x02      # host -> board
MSG_READING = 0x03        # board -> host
MSG_CONFIG_GET = 0x04     # host -> board
MSG_CONFIG_SET = 0x05     # host -> board
MSG_ACK = 0x06            # either way
MSG_NACK = 0x07           # either way
MSG_LOG = 0x08            # board -> host
MSG_HEARTBEAT = 0x09      # board -> host
MSG_HELLO_REQUEST = 0x0A  # host -> board: "say hello again" (after a host restart)

NACK_UNKNOWN_TYPE = 1
NACK_BAD_PAYLOAD = 2
NACK_UNKNOWN_KEY = 3
NACK_BAD_VALUE = 4
NACK_VERSION = 5
NACK_BUSY = 6

CONFIG_REPORT_INTERVAL_MS = 1     # i32, 100..3_600_000
CONFIG_HEARTBEAT_INTERVAL_MS = 2  # i32, 1000..600_000
CONFIG_CHANNEL_MASK = 3           # i32, bit n enables channel n

STATUS_OK = 0
STATUS_WARMING_UP = 1
STATUS_FAULT = 2

LOG_DEBUG, LOG_INFO, LOG_WARNING, LOG_ERROR = 0, 1, 2, 3

# Quantity code -> unit. A channel's value is raw * 10**exponent in this unit.
QUANTITY_UNITS: Dict[int, str] = {
    0: "",
    1: "degC",
    2: "%RH",
    3: "ug/m3",
    4: "cm",
    5: "dB",
    6: "mm",
    7: "hPa",
    8: "V",
    9: "count",
}
MAX_NAME = 16

_crc16 = crcmod.predefined.mkPredefinedCrcFun("crc-ccitt-false")


def crc16(data: bytes) -> int:
    return int(_crc16(data))


@dataclass(frozen=True)
class Channel:
    """One entry of a board's sensor catalogue."""

    channel: int
    quantity: int
    exponent: int
    name: str

    @property
    def unit(self) -> str:
        return QUANTITY_UNITS.get(self.quantity, "")


@dataclass(frozen=True)
class Hello:
    proto_min: int
    proto_max: int
    board_id: bytes  # 8 bytes, e.g. the AVR's serial number
    fw_version: Tuple[int, int, int]
    channels: Tuple[Channel, ...]


@dataclass(frozen=True)
class HelloAck:
    version: int
    host_max: int


@dataclass(frozen=True)
class Reading:
    uptime_ms: int
    values: Tuple[Tuple[int, int, int], ...]  # (channel, status, raw i32)


@dataclass(frozen=True)
class ConfigGet:
    key: int


@dataclass(frozen=True)
class ConfigSet:
    key: int
    value: int


@dataclass(frozen=True)
class Ack:
    ref_seq: int
    key: int = 0     # for a config get/set: the key and its value now
    value: int = 0


@dataclass(frozen=True)
class Nack:
    ref_seq: int
    code: int


@dataclass(frozen=True)
class Log:
    level: int
    text: str


@dataclass(frozen=True)
class Heartbeat:
    uptime_ms: int
    rx_crc_errors: int


@dataclass(frozen=True)
class HelloRequest:
    pass


Message = object  # one of the dataclasses above


@dataclass(frozen=True)
class BoardFrame:
    """A CRC-checked frame: header fields and the raw payload (parse with `parse`)."""

    version: int
    type: int
    seq: int
    payload: bytes


def _pack_payload(msg: Message) -> Tuple[int, bytes]:
    if isinstance(msg, Hello):
        if len(msg.board_id) != 8:
            raise FrameError("board_id is 8 bytes")
        out = bytearray(struct.pack("<BB8s3BB", msg.proto_min, msg.proto_max, msg.board_id,
                                    *msg.fw_version, len(msg.channels)))
        for ch in msg.channels:
            name = ch.name.encode("ascii")
            if not 1 <= len(name) <= MAX_NAME:
                raise FrameError(f"channel name {ch.name!r} must be 1-{MAX_NAME} ASCII bytes")
            out += struct.pack("<BBbB", ch.channel, ch.quantity, ch.exponent, len(name)) + name
        return MSG_HELLO, bytes(out)
    if isinstance(msg, HelloAck):
        return MSG_HELLO_ACK, struct.pack("<BB", msg.version, msg.host_max)
    if isinstance(msg, Reading):
        out = bytearray(struct.pack("<IB", msg.uptime_ms, len(msg.values)))
        for channel, status, raw in msg.values:
            out += struct.pack("<BBi", channel, status, raw)
        return MSG_READING, bytes(out)
    if isinstance(msg, ConfigGet):
        return MSG_CONFIG_GET, struct.pack("<B", msg.key)
    if isinstance(msg, ConfigSet):
        return MSG_CONFIG_SET, struct.pack("<Bi", msg.key, msg.value)
    if isinstance(msg, Ack):
        return MSG_ACK, struct.pack("<BBi", msg.ref_seq, msg.key, msg.value)
    if isinstance(msg, Nack):
        return MSG_NACK, struct.pack("<BB", msg.ref_seq, msg.code)
    if isinstance(msg, Log):
        return MSG_LOG, struct.pack("<B", msg.level) + msg.text.encode("utf-8")
    if isinstance(msg, Heartbeat):
        return MSG_HEARTBEAT, struct.pack("<IH", msg.uptime_ms, msg.rx_crc_errors)
    if isinstance(msg, HelloRequest):
        return MSG_HELLO_REQUEST, b""
    raise FrameError(f"not a board message: {msg!r}")


def encode(msg: Message, seq: int, version: int = VERSION_MAX) -> bytes:
    """One complete wire frame: 0x00, the COBS-encoded body, 0x00."""
    try:
        kind, payload = _pack_payload(msg)
    except (struct.error, UnicodeEncodeError) as exc:
        raise FrameError(f"cannot encode {type(msg).__name__}: {exc}") from exc
    if len(payload) > MAX_PAYLOAD:
        raise FrameError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
    if kind == MSG_HELLO:
        version = 1  # HELLO's layout is frozen, so any host can read it
    head = struct.pack("<BBB", version, kind, seq & 0xFF) + payload
    wire: bytes = cobs.encode(head + struct.pack("<H", crc16(head)))
    return b"\x00" + wire + b"\x00"


def decode(data: bytes) -> "Decoded[BoardFrame]":
    """Decode one frame from the start of a byte stream; frames end at 0x00."""
    end = data.find(b"\x00")
    if end < 0:
        if len(data) > MAX_ENCODED:
            return Decoded(len(data), None, LENGTH)
        return Decoded(0)
    if end == 0:
        return Decoded(1)  # idle delimiter
    used = end + 1
    if end > MAX_ENCODED:
        return Decoded(used, None, LENGTH)
    try:
        body = cobs.decode(data[:end])
    except cobs.DecodeError:
        return Decoded(used, None, RESYNC)
    if len(body) < HEADER_LEN + CRC_LEN:
        return Decoded(used, None, RESYNC)
    (sent,) = struct.unpack_from("<H", body, len(body) - CRC_LEN)
    if crc16(body[:-CRC_LEN]) != sent:
        return Decoded(used, None, CHECKSUM)
    return Decoded(used, BoardFrame(body[0], body[1], body[2], bytes(body[HEADER_LEN:-CRC_LEN])))


def frames_in(data: bytes) -> List[BoardFrame]:
    """Every CRC-valid frame in a complete byte string (for tests and tools)."""
    return StreamDecoder(decode).feed(data)


def _parse_hello(p: bytes) -> Hello:
    pmin, pmax, board_id, fa, fb, fc, count = struct.unpack_from("<BB8s3BB", p, 0)
    pos = 14
    channels = []
    for _ in range(count):
        ch, qty, exp, nlen = struct.unpack_from("<BBbB", p, pos)
        pos += 4
        name = p[pos : pos + nlen]
        if len(name) != nlen:
            raise FrameError("hello: channel name runs past the payload")
        pos += nlen
        channels.append(Channel(ch, qty, exp, name.decode("ascii")))
    return Hello(pmin, pmax, board_id, (fa, fb, fc), tuple(channels))


def _parse_reading(p: bytes) -> Reading:
    uptime, count = struct.unpack_from("<IB", p, 0)
    values = tuple(struct.unpack_from("<BBi", p, 5 + 6 * i) for i in range(count))
    return Reading(uptime, values)


def parse(frame: BoardFrame) -> Message:
    """The message in a frame. Trailing bytes from newer versions are ignored."""
    p = frame.payload
    try:
        if frame.type == MSG_HELLO:
            return _parse_hello(p)
        if frame.type == MSG_HELLO_ACK:
            return HelloAck(*struct.unpack_from("<BB", p))
        if frame.type == MSG_READING:
            return _parse_reading(p)
        if frame.type == MSG_CONFIG_GET:
            return ConfigGet(*struct.unpack_from("<B", p))
        if frame.type == MSG_CONFIG_SET:
            return ConfigSet(*struct.unpack_from("<Bi", p))
        if frame.type == MSG_ACK:
            return Ack(*struct.unpack_from("<BBi", p))
        if frame.type == MSG_NACK:
            return Nack(*struct.unpack_from("<BB", p))
        if frame.type == MSG_LOG:
            return Log(p[0], p[1:].decode("utf-8", errors="replace"))
        if frame.type == MSG_HEARTBEAT:
            return Heartbeat(*struct.unpack_from("<IH", p))
        if frame.type == MSG_HELLO_REQUEST:
            return HelloRequest()
    except (struct.error, IndexError, UnicodeDecodeError) as exc:
        raise FrameError(f"message type {frame.type:#04x}: bad payload: {exc}") from exc
    raise FrameError(f"unknown message type {frame.type:#04x}")


def negotiate(proto_min: int, proto_max: int,
              host_min: int = VERSION_MIN, host_max: int = VERSION_MAX) -> int:
    """The version both sides speak: the highest common one; FrameError when none."""
    version = min(proto_max, host_max)
    if version < max(proto_min, host_min):
        raise FrameError(
            f"board speaks versions {proto_min}-{proto_max}, host {host_min}-{host_max}"
        )
    return version


def seq_gap(last: int, seq: int) -> int:
    """Frames lost between two sequence numbers from the same sender."""
    return (seq - last - 1) & 0xFF
