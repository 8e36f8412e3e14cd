"""Plantower PMS5003 / PMS7003 particulate sensors (9600 8N1).

Data frame, 32 bytes, every field big-endian::

     0    1    2    3    4 ........................... 29   30   31
    +----+----+---------+------------------------------+---------+
    | 42 | 4D | len=28  | 13 data words (u16)          | sum-16  |
    +----+----+---------+------------------------------+---------+

    word  0..2   PM1.0 / PM2.5 / PM10, CF=1 (factory calibration), ug/m3
    word  3..5   PM1.0 / PM2.5 / PM10, atmospheric environment, ug/m3
    word  6..11  particles beyond 0.3 / 0.5 / 1.0 / 2.5 / 5.0 / 10 um per 0.1 L
    word 12      reserved (PMS5003: version byte, error code byte)

The checksum is the 16-bit sum of bytes 0..29. A command answer is the same frame
with len=4: two data bytes (the echoed command and its data) and the checksum.

Command, 7 bytes: ``42 4D CMD DATAH DATAL LRCH LRCL`` where LRC is the 16-bit sum
of the first five bytes. CMD E2 reads one frame in passive mode; E1 sets the mode
(00 passive, 01 active); E4 sleeps (00) or wakes (01) the sensor.
"""

import struct
from dataclasses import dataclass
from typing import Dict, Tuple

from firmware_bridge.errors import FrameError
from firmware_bridge.framing import CHECKSUM, LENGTH, RESYNC, Decoded, skip_to

START = b"\x42\x4d"
FRAME_LEN = 32
DATA_LEN = 28
ANSWER_LEN = 4
BAUD = 9600

CMD_READ = 0xE2
CMD_MODE = 0xE1
CMD_SLEEP = 0xE4
MODE_PASSIVE = 0x00
MODE_ACTIVE = 0x01

FIELDS: Tuple[str, ...] = (
    "pm1_0_cf1", "pm2_5_cf1", "pm10_cf1",
    "pm1_0", "pm2_5", "pm10",
    "particles_0_3um", "particles_0_5um", "particles_1_0um",
    "particles_2_5um", "particles_5_0um", "particles_10um",
    "reserved",
)
# Unit per published value; the counts are per 0.1 litre of air.
UNITS: Dict[str, str] = {
    **{name: "ug/m3" for name in FIELDS[:6]},
    **{name: "count/0.1L" for name in FIELDS[6:12]},
}


@dataclass(frozen=True)
class PmsReading:
    words: Tuple[int, ...]

    def values(self) -> Dict[str, float]:
        """Physical values: mass concentrations in ug/m3 and particle counts."""
        return {name: float(word) for name, word in zip(FIELDS[:12], self.words)}


@dataclass(frozen=True)
class PmsAnswer:
    """A sensor's answer to a mode or sleep command: the command and its data byte."""

    command: int
    data: int


def checksum(data: bytes) -> int:
    return sum(data) & 0xFFFF


def encode_reading(words: Tuple[int, ...]) -> bytes:
    if len(words) != 13 or not all(0 <= w <= 0xFFFF for w in words):
        raise FrameError("a PMS frame carries 13 words of 0..65535")
    body = START + struct.pack(">H13H", DATA_LEN, *words)
    return body + struct.pack(">H", checksum(body))


def encode_answer(command: int, data: int) -> bytes:
    body = START + struct.pack(">HBB", ANSWER_LEN, command, data)
    return body + struct.pack(">H", checksum(body))


def encode_command(command: int, data: int = 0) -> bytes:
    if not (0 <= command <= 0xFF and 0 <= data <= 0xFFFF):
        raise FrameError("a PMS command is one byte with a 16-bit argument")
    body = START + struct.pack(">BH", command, data)
    return body + struct.pack(">H", checksum(body))


def read_command() -> bytes:
    """The passive-mode read request."""
    return encode_command(CMD_READ)


def mode_command(active: bool) -> bytes:
    return encode_command(CMD_MODE, MODE_ACTIVE if active else MODE_PASSIVE)


def sleep_command(awake: bool) -> bytes:
    return encode_command(CMD_SLEEP, 1 if awake else 0)


def decode(data: bytes) -> "Decoded[object]":
    """Decode one frame (a PmsReading or PmsAnswer) from the start of `data`."""
    if len(data) < 2:
        if data and data[0] != START[0]:
            return Decoded(1, None, RESYNC)
        return Decoded(0)
    if data[:2] != START:
        return Decoded(skip_to(data, START), None, RESYNC)
    if len(data) < 4:
        return Decoded(0)
    length = (data[2] << 8) | data[3]
    if length not in (DATA_LEN, ANSWER_LEN):
        return Decoded(skip_to(data, START), None, LENGTH)
    total = 4 + length
    if len(data) < total:
        return Decoded(0)
    (sent,) = struct.unpack_from(">H", data, total - 2)
    if checksum(data[: total - 2]) != sent:
        # The 42 4D may have been noise: resume at the next marker inside.
        return Decoded(skip_to(data, START), None, CHECKSUM)
    if length == DATA_LEN:
        return Decoded(total, PmsReading(struct.unpack_from(">13H", data, 4)))
    return Decoded(total, PmsAnswer(data[4], data[5]))


def decode_command(data: bytes) -> "Decoded[Tuple[int, int]]":
    """Decode a 7-byte command (the simulator's side): (command, data)."""
    if len(data) < 2:
        if data and data[0] != START[0]:
            return Decoded(1, None, RESYNC)
        return Decoded(0)
    if data[:2] != START:
        return Decoded(skip_to(data, START), None, RESYNC)
    if len(data) < 7:
        return Decoded(0)
    if checksum(data[:5]) != struct.unpack_from(">H", data, 5)[0]:
        return Decoded(skip_to(data, START), None, CHECKSUM)
    return Decoded(7, (data[2], struct.unpack_from(">H", data, 3)[0]))
