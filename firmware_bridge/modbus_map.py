"""Modbus RTU register maps (TOML) and the pure parts of RTU: values and silence framing.

A register map names each value a register-mapped sensor offers::

    [[registers]]
    name = "water_level"   # metric name (a-z, 0-9, _)
    address = 1            # slave (unit) address on the RS485 bus, 1..247
    register = 0           # register number, 0-based as on the wire
    function = "holding"   # holding (03) | input (04)
    type = "uint16"        # uint16 | int16 | uint32 | int32 | float32
    word_order = "big"     # big: high word first (the Modbus habit) | little
    scale = 0.1            # physical = raw * scale + offset
    offset = 0.0
    unit = "cm"

One entry's schema (`Register`) is the contract's, simpul_wire.config.registers: a
`modbus` collector's inline registers are part of the managed config the fleet validates.

RTU frames are delimited by silence: a gap of 3.5 character times (a character is
11 bits) ends a frame; above 19200 baud the gap is fixed at 1.75 ms.
"""

import struct
import sys
from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

import crcmod.predefined
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from firmware_bridge.errors import RegisterMapError
from simpul_wire.config.registers import Register

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.9 boxes
    import tomli as tomllib

FUNCTION_CODES: Dict[str, int] = {"holding": 3, "input": 4}


class RegisterMap(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    registers: List[Register] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> "RegisterMap":
        names = [r.name for r in self.registers]
        if len(set(names)) != len(names):
            raise ValueError("register names must differ")
        return self

    def units(self) -> Dict[str, str]:
        return {r.name: r.unit for r in self.registers}


def parse_register_map(text: str, source: str = "register map") -> RegisterMap:
    """Parse TOML text; RegisterMapError names the failing field."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RegisterMapError(f"{source}: not valid TOML: {exc}") from exc
    try:
        return RegisterMap.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            ".".join(str(p) for p in e["loc"]) + ": " + e["msg"] for e in exc.errors()
        )
        raise RegisterMapError(f"{source}: {problems}") from exc


def decode_value(words: Sequence[int], reg: Register) -> float:
    """Physical value from the raw 16-bit words of one register entry."""
    if len(words) != reg.count:
        raise RegisterMapError(f"{reg.name}: expected {reg.count} words, got {len(words)}")
    ordered = list(words) if reg.word_order == "big" else list(reversed(words))
    raw_bytes = struct.pack(f">{len(ordered)}H", *ordered)
    fmt = {"uint16": ">H", "int16": ">h", "uint32": ">I", "int32": ">i", "float32": ">f"}
    (raw,) = struct.unpack(fmt[reg.type], raw_bytes)
    return float(raw) * reg.scale + reg.offset


def encode_value(value: float, reg: Register) -> List[int]:
    """The words a device holds for a physical value (the simulator's side)."""
    raw = (value - reg.offset) / reg.scale
    fmt = {"uint16": ">H", "int16": ">h", "uint32": ">I", "int32": ">i", "float32": ">f"}
    number = raw if reg.type == "float32" else round(raw)
    words = list(struct.unpack(f">{reg.count}H", struct.pack(fmt[reg.type], number)))
    return words if reg.word_order == "big" else list(reversed(words))


@dataclass(frozen=True)
class ReadBlock:
    """One request: `count` registers from `start` of one slave and function."""

    address: int
    function: str
    start: int
    count: int
    registers: Tuple[Register, ...]

    def values(self, words: Sequence[int]) -> Dict[str, float]:
        return {r.name: decode_value(words[r.number - self.start :
                                           r.number - self.start + r.count], r)
                for r in self.registers}


def plan_reads(regmap: RegisterMap, max_count: int = 125) -> List[ReadBlock]:
    """Group registers into as few requests as possible: contiguous or overlapping
    registers of one slave and function share a request (at most 125 words)."""
    keyed = sorted(regmap.registers, key=lambda r: (r.address, r.function, r.number))
    blocks: List[ReadBlock] = []
    for reg in keyed:
        last = blocks[-1] if blocks else None
        if (last is not None and (last.address, last.function) == (reg.address, reg.function)
                and reg.number <= last.start + last.count
                and reg.number + reg.count - last.start <= max_count):
            end = max(last.start + last.count, reg.number + reg.count)
            blocks[-1] = ReadBlock(last.address, last.function, last.start, end - last.start,
                                   (*last.registers, reg))
        else:
            blocks.append(ReadBlock(reg.address, reg.function, reg.number, reg.count, (reg,)))
    return blocks


_crc_modbus = crcmod.predefined.mkPredefinedCrcFun("modbus")


def rtu_crc(data: bytes) -> bytes:
    """CRC-16/MODBUS, low byte first as it travels."""
    return struct.pack("<H", _crc_modbus(data))


def rtu_frame(pdu_with_address: bytes) -> bytes:
    return pdu_with_address + rtu_crc(pdu_with_address)


def rtu_valid(frame: bytes) -> bool:
    return len(frame) >= 4 and rtu_crc(frame[:-2]) == frame[-2:]


def rtu_response_at(data: bytes) -> int:
    """Offset of the first CRC-valid slave response in `data`, or -1.

    A response is `unit fc ...`: for a read (FC 01-04) `unit fc n data[n] crc`, for an
    exception `unit fc|0x80 code crc`, for a write echo (FC 05, 06, 15, 16) 8 bytes.
    Noise before a response (a bus turnaround glitch) is skipped this way.
    """
    for at in range(len(data) - 4):
        fc = data[at + 1]
        if fc & 0x80:
            length = 5
        elif fc in (1, 2, 3, 4):
            length = 5 + data[at + 2]
        elif fc in (5, 6, 15, 16):
            length = 8
        else:
            continue
        frame = data[at : at + length]
        if len(frame) == length and 1 <= data[at] <= 247 and rtu_valid(frame):
            return at
    return -1


def silence_s(baud: int) -> float:
    """The inter-frame gap: 3.5 characters of 11 bits, at least 1.75 ms."""
    return 1.75e-3 if baud > 19200 else 3.5 * 11 / baud


def split_by_silence(
    arrivals: Sequence[Tuple[float, bytes]], baud: int
) -> Tuple[List[bytes], int]:
    """Split timed chunks (arrival time, bytes) into RTU frames at silent gaps.

    Returns the frames whose CRC holds, and the number of spans dropped for a bad CRC
    (noise on the bus, or a frame cut by a gap).
    """
    gap = silence_s(baud)
    spans: List[bytearray] = []
    last_end = None
    for at, chunk in arrivals:
        if not chunk:
            continue
        if last_end is None or at - last_end >= gap or not spans:
            spans.append(bytearray())
        spans[-1] += chunk
        # The chunk's last byte arrives len(chunk) character times after its first.
        last_end = at + len(chunk) * 11 / baud
    good = [bytes(s) for s in spans if rtu_valid(bytes(s))]
    return good, len(spans) - len(good)
