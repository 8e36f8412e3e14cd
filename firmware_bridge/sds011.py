"""Nova Fitness SDS011 particulate sensor (9600 8N1).

Sensor to host, 10 bytes::

     0    1    2 ..................... 7    8    9
    +----+----+--------------------------+----+----+
    | AA | C0 | PM25 lo,hi  PM10 lo,hi  ID| CS | AB |     measurement
    | AA | C5 | CMD  b3  b4  b5  ID lo,hi | CS | AB |     command reply
    +----+----+--------------------------+----+----+

PM values are little-endian tenths of ug/m3; CS is the low byte of the sum of bytes
2..7. A firmware-version reply carries year, month, day in b3..b5.

Host to sensor, 19 bytes::

    AA B4 CMD d1 .. d12 ID_lo ID_hi CS AB

CS is the low byte of the sum of bytes 2..16; ID FF FF addresses every sensor.
Commands (CMD, then d1 d2): 02 reporting mode (d1 0 query / 1 set; d2 0 active /
1 query), 04 query data, 06 sleep/work (d1 0 query / 1 set; d2 0 sleep / 1 work),
08 working period (d1 0 query / 1 set; d2 0 continuous / 1..30 minutes),
07 firmware version.
"""

import struct
from dataclasses import dataclass
from typing import Dict, Tuple

from firmware_bridge.errors import FrameError
from firmware_bridge.framing import CHECKSUM, RESYNC, Decoded

HEAD = 0xAA
TAIL = 0xAB
MEASUREMENT = 0xC0
REPLY = 0xC5
COMMAND = 0xB4
FRAME_LEN = 10
COMMAND_LEN = 19
BAUD = 9600
ALL_SENSORS = 0xFFFF

CMD_REPORTING_MODE = 0x02
CMD_QUERY = 0x04
CMD_SET_ID = 0x05
CMD_SLEEP_WORK = 0x06
CMD_FIRMWARE = 0x07
CMD_WORKING_PERIOD = 0x08

UNITS: Dict[str, str] = {"pm2_5": "ug/m3", "pm10": "ug/m3"}


@dataclass(frozen=True)
class SdsReading:
    pm2_5_tenths: int
    pm10_tenths: int
    device_id: int

    def values(self) -> Dict[str, float]:
        return {"pm2_5": self.pm2_5_tenths / 10.0, "pm10": self.pm10_tenths / 10.0}


@dataclass(frozen=True)
class SdsReply:
    """A reply to a command: the command byte, its three data bytes and the id."""

    command: int
    data: Tuple[int, int, int]
    device_id: int


def checksum(data: bytes) -> int:
    return sum(data) & 0xFF


def encode_reading(pm2_5_tenths: int, pm10_tenths: int, device_id: int = 0xA160) -> bytes:
    if not all(0 <= v <= 0xFFFF for v in (pm2_5_tenths, pm10_tenths, device_id)):
        raise FrameError("SDS011 values and id are 16-bit")
    body = struct.pack("<HHH", pm2_5_tenths, pm10_tenths, device_id)
    return bytes([HEAD, MEASUREMENT]) + body + bytes([checksum(body), TAIL])


def encode_reply(command: int, data: Tuple[int, int, int], device_id: int = 0xA160) -> bytes:
    body = bytes([command, *data]) + struct.pack("<H", device_id)
    return bytes([HEAD, REPLY]) + body + bytes([checksum(body), TAIL])


def encode_command(command: int, d1: int = 0, d2: int = 0, device_id: int = ALL_SENSORS) -> bytes:
    if not all(0 <= v <= 0xFF for v in (command, d1, d2)) or not 0 <= device_id <= 0xFFFF:
        raise FrameError("SDS011 command fields are bytes and a 16-bit id")
    body = bytes([command, d1, d2]) + bytes(10) + struct.pack("<H", device_id)
    return bytes([HEAD, COMMAND]) + body + bytes([checksum(body), TAIL])


def reporting_mode_command(query: bool, set_mode: bool = True) -> bytes:
    return encode_command(CMD_REPORTING_MODE, 1 if set_mode else 0, 1 if query else 0)


def query_command() -> bytes:
    return encode_command(CMD_QUERY)


def sleep_work_command(work: bool, set_mode: bool = True) -> bytes:
    return encode_command(CMD_SLEEP_WORK, 1 if set_mode else 0, 1 if work else 0)


def working_period_command(minutes: int, set_mode: bool = True) -> bytes:
    if not 0 <= minutes <= 30:
        raise FrameError("SDS011 working period is 0 (continuous) to 30 minutes")
    return encode_command(CMD_WORKING_PERIOD, 1 if set_mode else 0, minutes)


def firmware_command() -> bytes:
    return encode_command(CMD_FIRMWARE)


def _next_head(data: bytes, end: int = -1) -> int:
    """Bytes to drop so data starts at the next HEAD after index 0 (before `end`)."""
    at = data.find(HEAD, 1, len(data) if end < 0 else end)
    if at > 0:
        return at
    return len(data) if end < 0 else end


def _frame_decode(data: bytes, kinds: Tuple[int, ...], length: int) -> "Decoded[bytes]":
    """Find a `length`-byte frame AA <kind> ... CS AB at the start of data."""
    if not data:
        return Decoded(0)
    if data[0] != HEAD:
        return Decoded(_next_head(data), None, RESYNC)
    if len(data) < 2:
        return Decoded(0)
    if data[1] not in kinds:
        return Decoded(_next_head(data), None, RESYNC)
    if len(data) < length:
        return Decoded(0)
    if data[length - 1] != TAIL:
        return Decoded(_next_head(data), None, RESYNC)
    if checksum(data[2 : length - 2]) != data[length - 2]:
        # A real frame may start inside this one: drop only up to the next head.
        return Decoded(_next_head(data, length), None, CHECKSUM)
    return Decoded(length, data[:length])


def decode(data: bytes) -> "Decoded[object]":
    """Decode one sensor frame (SdsReading or SdsReply) from the start of `data`."""
    found = _frame_decode(data, (MEASUREMENT, REPLY), FRAME_LEN)
    if found.frame is None:
        return Decoded(found.used, None, found.error)
    frame = found.frame
    (dev,) = struct.unpack_from("<H", frame, 6)
    if frame[1] == MEASUREMENT:
        pm25, pm10 = struct.unpack_from("<HH", frame, 2)
        return Decoded(FRAME_LEN, SdsReading(pm25, pm10, dev))
    return Decoded(FRAME_LEN, SdsReply(frame[2], (frame[3], frame[4], frame[5]), dev))


@dataclass(frozen=True)
class SdsCommand:
    command: int
    d1: int
    d2: int
    device_id: int


def decode_command(data: bytes) -> "Decoded[SdsCommand]":
    """Decode a 19-byte host command (the simulator's side)."""
    found = _frame_decode(data, (COMMAND,), COMMAND_LEN)
    if found.frame is None:
        return Decoded(found.used, None, found.error)
    frame = found.frame
    (dev,) = struct.unpack_from("<H", frame, 15)
    return Decoded(COMMAND_LEN, SdsCommand(frame[2], frame[3], frame[4], dev))
