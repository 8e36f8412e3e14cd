"""Plantower PMS particulate sensors (9600 8N1): PMS5003, PMS7003, PMS5003T, PMS5003ST
and PMS3003.

Data frame, every field big-endian; PMS5003 / PMS7003 / PMS5003T send 32 bytes::

     0    1    2    3    4 ........................... 29   30   31
    +----+----+---------+------------------------------+---------+
    | 42 | 4D | len=28  | 13 data words (u16)          | sum-16  |
    +----+----+---------+------------------------------+---------+

    word  0..2   PM1.0 / PM2.5 / PM10, CF=1 (factory calibration), ug/m3
    word  3..5   PM1.0 / PM2.5 / PM10, atmospheric environment, ug/m3
    word  6..11  particles beyond 0.3 / 0.5 / 1.0 / 2.5 / 5.0 / 10 um per 0.1 L
    word 12      reserved (PMS5003: version byte, error code byte)

The models differ in their words (`MODELS`):

    PMS5003T   32 bytes (len 28): words 10 and 11 are the temperature (0.1 degC,
               signed) and the relative humidity (0.1 %) in place of the 5.0 and
               10 um counts
    PMS5003ST  40 bytes (len 36): the PMS5003's 12 words, then formaldehyde
               (ug/m3: the datasheet's mg/m3 x 1000), temperature (0.1 degC, signed),
               humidity (0.1 %), reserved, version and error code
    PMS3003    24 bytes (len 20): the six mass concentrations and 3 reserved words,
               no particle counts; it takes no commands (active mode only)

The frame length tells 24, 32 and 40-byte models apart; a PMS5003T's frame looks like
a PMS5003's, so the configured model decides (`PmsReading.values(model)`), and
`implausible()` catches the mix-up: counts that rise with particle size.

The checksum is the 16-bit sum of every byte before it. A command answer is the same
frame with len=4: two data bytes (the echoed command and its data) and the checksum.

Command, 7 bytes: ``42 4D CMD DATAH DATAL LRCH LRCL`` where LRC is the 16-bit sum
of the first five bytes. CMD E2 reads one frame in passive mode; E1 sets the mode
(00 passive, 01 active); E4 sleeps (00) or wakes (01) the sensor.
"""

import struct
from dataclasses import dataclass
from typing import Dict, FrozenSet, List, Mapping, Optional, Tuple

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

_MASS: Tuple[str, ...] = ("pm1_0_cf1", "pm2_5_cf1", "pm10_cf1", "pm1_0", "pm2_5", "pm10")
_COUNTS: Tuple[str, ...] = (
    "particles_0_3um", "particles_0_5um", "particles_1_0um",
    "particles_2_5um", "particles_5_0um", "particles_10um",
)
# Word names of the PMS5003 (and PMS7003); "reserved" words are not published.
FIELDS: Tuple[str, ...] = _MASS + _COUNTS + ("reserved",)
# Unit per published value; the counts are per 0.1 litre of air.
UNITS: Dict[str, str] = {
    **{name: "ug/m3" for name in FIELDS[:6]},
    **{name: "count/0.1L" for name in FIELDS[6:12]},
}
# Units of the values only some models have.
EXTRA_UNITS: Dict[str, str] = {"temperature": "degC", "humidity": "%",
                               "formaldehyde": "ug/m3"}
_SIZES = {"particles_0_3um": "0.3", "particles_0_5um": "0.5", "particles_1_0um": "1.0",
          "particles_2_5um": "2.5", "particles_5_0um": "5.0", "particles_10um": "10"}


@dataclass(frozen=True)
class Model:
    """One PMS model's data frame: a name per word and how to scale it."""

    name: str
    fields: Tuple[str, ...]  # one per word; "reserved" words are not published
    signed: FrozenSet[str] = frozenset()  # words read as int16
    tenths: FrozenSet[str] = frozenset()  # words in tenths of the unit
    commands: bool = True  # takes mode, sleep and passive read commands

    @property
    def data_len(self) -> int:
        """The frame's length field: the data words and the checksum."""
        return 2 * len(self.fields) + 2

    @property
    def frame_len(self) -> int:
        return 4 + self.data_len

    @property
    def counts(self) -> Tuple[str, ...]:
        """Its particle counts, smallest size first."""
        return tuple(name for name in self.fields if name in _SIZES)

    def units(self) -> Dict[str, str]:
        every = {**UNITS, **EXTRA_UNITS}
        return {name: every[name] for name in self.fields if name != "reserved"}


_TH = frozenset({"temperature", "humidity"})
MODELS: Dict[str, Model] = {
    "pms5003": Model("pms5003", FIELDS),
    "pms7003": Model("pms7003", FIELDS),
    "pms5003t": Model("pms5003t", _MASS + _COUNTS[:4] + ("temperature", "humidity",
                                                         "reserved"),
                      signed=frozenset({"temperature"}), tenths=_TH),
    "pms5003st": Model("pms5003st", _MASS + _COUNTS + (
        "formaldehyde", "temperature", "humidity", "reserved", "reserved"),
        signed=frozenset({"temperature"}), tenths=_TH),
    "pms3003": Model("pms3003", _MASS + ("reserved",) * 3, commands=False),
}
DEFAULT_MODEL = "pms5003"
# Length field -> the data frame lengths a sensor may send.
DATA_LENS: FrozenSet[int] = frozenset(m.data_len for m in MODELS.values())
MAX_FRAME_LEN = max(m.frame_len for m in MODELS.values())


def model(name: str) -> Model:
    try:
        return MODELS[name]
    except KeyError:
        raise FrameError(f"unknown PMS model {name!r} (known: {', '.join(MODELS)})") from None


def models_of_length(frame_len: int) -> List[str]:
    """The models whose data frames are `frame_len` bytes long."""
    return [m.name for m in MODELS.values() if m.frame_len == frame_len]


def _either(names: List[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def wrong_model(frame_len: int, configured: str) -> str:
    """Why a frame of `frame_len` bytes is refused for the configured model."""
    want = model(configured)
    names = models_of_length(frame_len)
    if not names:
        return f"{frame_len}-byte frames are no PMS model's"
    text = (f"{frame_len}-byte frames come from a {_either(names)}, not a {configured} "
            f"({want.frame_len} bytes)")
    return f'{text}; set model = "{names[0]}"' if len(names) == 1 else text


@dataclass(frozen=True)
class PmsReading:
    words: Tuple[int, ...]

    @property
    def frame_len(self) -> int:
        return 2 * len(self.words) + 6

    def values(self, model_name: str = DEFAULT_MODEL) -> Dict[str, float]:
        """Physical values as the configured model sends them: mass concentrations in
        ug/m3, particle counts, and on some models temperature in degC, relative
        humidity in % and formaldehyde in ug/m3. FrameError when the frame's length is
        not the model's; its message names the model the frame's length matches."""
        m = model(model_name)
        if len(m.fields) != len(self.words):
            raise FrameError(wrong_model(self.frame_len, model_name))
        out: Dict[str, float] = {}
        for name, word in zip(m.fields, self.words):
            if name == "reserved":
                continue
            raw = word - 0x10000 if name in m.signed and word & 0x8000 else word
            out[name] = raw / 10 if name in m.tenths else float(raw)
        return out


@dataclass(frozen=True)
class PmsAnswer:
    """A sensor's answer to a mode or sleep command: the command and its data byte."""

    command: int
    data: int


def checksum(data: bytes) -> int:
    return sum(data) & 0xFFFF


def encode_reading(words: Tuple[int, ...]) -> bytes:
    """A data frame of 13 words (PMS5003/7003/5003T), 17 (PMS5003ST) or 9 (PMS3003)."""
    if 2 * len(words) + 2 not in DATA_LENS or not all(0 <= w <= 0xFFFF for w in words):
        raise FrameError("a PMS frame carries 13 words (17 on a PMS5003ST, 9 on a "
                         "PMS3003) of 0..65535")
    body = START + struct.pack(f">H{len(words)}H", 2 * len(words) + 2, *words)
    return body + struct.pack(">H", checksum(body))


def encode_values(values: Mapping[str, float], model_name: str = DEFAULT_MODEL,
                  reserved: int = 0) -> bytes:
    """The data frame a `model_name` sensor sends for these physical values (the
    inverse of PmsReading.values; a missing value is 0)."""
    m = model(model_name)
    words = []
    for name in m.fields:
        if name == "reserved":
            words.append(reserved)
            continue
        raw = round(values.get(name, 0.0) * (10 if name in m.tenths else 1))
        low = -0x8000 if name in m.signed else 0
        if not low <= raw <= (0x7FFF if name in m.signed else 0xFFFF):
            raise FrameError(f"{model_name}: {name} {values.get(name)} does not fit a word")
        words.append(raw & 0xFFFF)
    return encode_reading(tuple(words))


def implausible(values: Mapping[str, float], model_name: str = DEFAULT_MODEL) -> Optional[str]:
    """Why a reading is one no particle sensor gives, or None.

    The counts are of particles beyond each size, so they never rise with the size;
    when they do, the words are not counts (a PMS5003T read as a PMS5003 shows its
    temperature and humidity as the 5.0 and 10 um counts)."""
    m = model(model_name)
    counts = [name for name in m.counts if name in values]
    for small, big in zip(counts, counts[1:]):
        if values[big] > values[small]:
            text = (f"impossible {model_name} reading: more particles beyond "
                    f"{_SIZES[big]} um ({values[big]:g}) than beyond {_SIZES[small]} um "
                    f"({values[small]:g})")
            twin = model_name != "pms5003t" and "pms5003t" in models_of_length(m.frame_len)
            if twin and big in ("particles_5_0um", "particles_10um"):
                text += ('; is it a pms5003t (temperature and humidity in those words)? '
                         'set model = "pms5003t"')
            return text
    return None


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


def _frame_inside(data: bytes) -> int:
    """Where a whole valid frame starts inside `data` (after its first byte), or 0."""
    at = data.find(START, 1)
    while at > 0:
        if decode(data[at:]).frame is not None:
            return at
        at = data.find(START, at + 1)
    return 0


def decode(data: bytes) -> "Decoded[object]":
    """Decode one frame (a PmsReading of any model's length, or a PmsAnswer) from the
    start of `data`."""
    if len(data) < 2:
        if data and data[0] != START[0]:
            return Decoded(1, None, RESYNC)
        return Decoded(0)
    if data[:2] != START:
        return Decoded(skip_to(data, START), None, RESYNC)
    if len(data) < 4:
        return Decoded(0)
    length = (data[2] << 8) | data[3]
    if length not in DATA_LENS and length != ANSWER_LEN:
        return Decoded(skip_to(data, START), None, LENGTH)
    total = 4 + length
    if len(data) < total:
        # A whole frame inside the promised one: this 42 4D was noise.
        inside = _frame_inside(data)
        return Decoded(inside, None, RESYNC) if inside else Decoded(0)
    (sent,) = struct.unpack_from(">H", data, total - 2)
    if checksum(data[: total - 2]) != sent:
        # The 42 4D may have been noise: resume at the next marker inside.
        return Decoded(skip_to(data, START), None, CHECKSUM)
    if length == ANSWER_LEN:
        return Decoded(total, PmsAnswer(data[4], data[5]))
    return Decoded(total, PmsReading(struct.unpack_from(f">{(length - 2) // 2}H", data, 4)))


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
