"""Modbus register maps, value codecs and RTU framing by silence (timed gaps)."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_bridge.errors import RegisterMapError
from firmware_bridge.modbus_map import (
    decode_value,
    encode_value,
    parse_register_map,
    plan_reads,
    rtu_frame,
    rtu_response_at,
    rtu_valid,
    silence_s,
    split_by_silence,
)
from simpul_wire.config.registers import Register

pytestmark = pytest.mark.py39

MAP = """
[[registers]]
name = "water_level"
address = 3
register = 100
function = "input"
type = "uint16"
scale = 0.1
unit = "cm"

[[registers]]
name = "rain"
register = 4
type = "float32"
word_order = "little"
unit = "mm"
"""


def test_parse_map():
    regmap = parse_register_map(MAP)
    level, rain = regmap.registers
    assert (level.address, level.number, level.function, level.count) == (3, 100, "input", 1)
    assert (rain.address, rain.function, rain.count) == (1, "holding", 2)
    assert regmap.units() == {"water_level": "cm", "rain": "mm"}


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("[[registers]]\nname = 'x'\nregister = 1\ntypo = 2\n", "typo"),
        ("[[registers]]\nname = 'x'\nregister = 1\ntype = 'int8'\n", "type"),
        ("[[registers]]\nname = 'x'\nregister = 1\naddress = 0\n", "address"),
        ("[[registers]]\nname = 'x'\nregister = 1\n[[registers]]\nname = 'x'\nregister = 2\n",
         "differ"),
        ("registers = [", "TOML"),
    ],
)
def test_bad_maps_name_the_field(text, words):
    with pytest.raises(RegisterMapError, match=words):
        parse_register_map(text)


@pytest.mark.parametrize(
    ("kind", "order", "words", "scale", "value"),
    [
        ("uint16", "big", [1234], 0.1, 123.4),
        ("int16", "big", [0xFFC9], 0.1, -5.5),
        ("uint32", "big", [0x0001, 0x0002], 1.0, 65538.0),
        ("int32", "little", [0xFFFE, 0xFFFF], 1.0, -2.0),
        ("float32", "big", [0x4110, 0x0000], 1.0, 9.0),  # IEEE 754 0x41100000
        ("float32", "little", [0x0000, 0x4110], 1.0, 9.0),
    ],
)
def test_value_table(kind, order, words, scale, value):
    reg = Register(name="v", register=0, type=kind, word_order=order, scale=scale)
    assert decode_value(words, reg) == pytest.approx(value)
    assert encode_value(value, reg) == words


def test_rtu_crc_vector():
    # Read one holding register of slave 1: the CRC every Modbus guide prints (84 0A).
    assert rtu_frame(bytes.fromhex("01 03 00 00 00 01")) == bytes.fromhex("01 03 00 00 00 01 84 0A")
    # The Modbus guides' example: slave 17 reads holding registers 108-110.
    assert rtu_valid(bytes.fromhex("11 03 00 6B 00 03 76 87"))
    assert not rtu_valid(bytes.fromhex("11 03 00 6B 00 03 76 88"))


frames = st.lists(st.binary(min_size=2, max_size=30).map(rtu_frame), min_size=1, max_size=6)


@settings(deadline=None, max_examples=200)
@given(frames, st.sampled_from([9600, 19200, 115200]), st.data())
def test_frames_split_by_silence_are_found(fs, baud, data):
    """Frames arrive in random chunks with short pauses inside and a silent gap between."""
    char = 11 / baud
    gap = silence_s(baud)
    t, arrivals = 0.0, []
    for frame in fs:
        pos = 0
        while pos < len(frame):
            n = data.draw(st.integers(1, len(frame) - pos))
            arrivals.append((t, frame[pos : pos + n]))
            # Inside a frame the line pauses at most 1.5 characters.
            t += n * char + data.draw(st.floats(0, 1.4 * char))
            pos += n
        t += gap * data.draw(st.floats(1.05, 5))
    good, bad = split_by_silence(arrivals, baud)
    assert (good, bad) == (fs, 0)


@settings(deadline=None, max_examples=200)
@given(frames, st.binary(min_size=1, max_size=20))
def test_noise_burst_is_its_own_dropped_span(fs, noise):
    baud, t, arrivals = 9600, 0.0, []
    gap = silence_s(baud) * 2
    for frame in fs:
        arrivals.append((t, noise))
        t += len(noise) * 11 / baud + gap
        arrivals.append((t, frame))
        t += len(frame) * 11 / baud + gap
    good, bad = split_by_silence(arrivals, baud)
    valid_noise = rtu_valid(noise)
    assert [f for f in good if not (valid_noise and f == noise)] == fs
    assert bad == (0 if valid_noise else len(fs))


def test_frame_cut_by_a_long_pause_is_dropped():
    frame = rtu_frame(bytes.fromhex("01 03 00 00 00 01"))
    good, bad = split_by_silence([(0.0, frame[:3]), (0.5, frame[3:])], 9600)
    assert (good, bad) == ([], 2)


def test_plan_reads_groups_contiguous_registers():
    regmap = parse_register_map("""
[[registers]]
name = "a"
register = 0
[[registers]]
name = "c"
register = 2
type = "float32"
[[registers]]
name = "b"
register = 1
[[registers]]
name = "far"
register = 10
[[registers]]
name = "other_slave"
address = 2
register = 3
[[registers]]
name = "input"
function = "input"
register = 0
""")
    blocks = [(b.address, b.function, b.start, b.count, [r.name for r in b.registers])
              for b in plan_reads(regmap)]
    assert blocks == [
        (1, "holding", 0, 4, ["a", "b", "c"]),
        (1, "holding", 10, 1, ["far"]),
        (1, "input", 0, 1, ["input"]),
        (2, "holding", 3, 1, ["other_slave"]),
    ]
    words = [123, 0xFFFF, 0x4110, 0x0000]
    assert plan_reads(regmap)[0].values(words) == {"a": 123.0, "b": 65535.0, "c": 9.0}


RESPONSE = rtu_frame(bytes.fromhex("01 03 08 01 F4 02 26 40 20 00 00"))


@pytest.mark.parametrize(
    ("data", "at"),
    [
        (RESPONSE, 0),
        (bytes.fromhex("CA 18 25 30 BB") + RESPONSE, 5),  # seen from pymodbus on a noisy line
        (rtu_frame(bytes.fromhex("02 83 02")), 0),  # an exception response
        (b"\x00\xff" + rtu_frame(bytes.fromhex("01 06 00 01 00 2A")), 2),  # a write echo
        (RESPONSE[:-1], -1),
        (b"", -1),
    ],
)
def test_rtu_response_at(data, at):
    assert rtu_response_at(data) == at


@settings(deadline=None, max_examples=300)
@given(st.binary(max_size=40), st.integers(1, 247), st.lists(st.integers(0, 0xFFFF), max_size=20))
def test_response_after_noise_is_found(noise, unit, words):
    body = bytes([unit, 3, 2 * len(words)]) + b"".join(w.to_bytes(2, "big") for w in words)
    data = noise + rtu_frame(body)
    at = rtu_response_at(data)
    assert 0 <= at <= len(noise)
    assert at == len(noise) or rtu_valid(data[at : at + 5 + data[at + 2]]) or \
        rtu_valid(data[at : at + 5]) or rtu_valid(data[at : at + 8])
