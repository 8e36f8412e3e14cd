"""PMS5003/PMS7003 framer: datasheet command vectors, frame tables, properties."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_bridge import pms
from firmware_bridge.errors import FrameError
from firmware_bridge.framing import StreamDecoder
from tests.sensors.framer_props import found_at, overlapped_by_other_frame, walk

pytestmark = pytest.mark.py39

# Commands exactly as printed in the Plantower PMS5003 / PMS7003 datasheets.
DATASHEET_COMMANDS = [
    (pms.read_command(), "42 4D E2 00 00 01 71"),
    (pms.mode_command(active=False), "42 4D E1 00 00 01 70"),
    (pms.mode_command(active=True), "42 4D E1 00 01 01 71"),
    (pms.sleep_command(awake=False), "42 4D E4 00 00 01 73"),
    (pms.sleep_command(awake=True), "42 4D E4 00 01 01 74"),
]

# A data frame written out by hand from the datasheet layout: PM1.0 5, PM2.5 8, PM10 8
# (CF=1 and atmospheric), counts 810/232/45/6/0/0, reserved 0x9700; checksum 0x02B4.
FRAME_HEX = (
    "42 4D 00 1C 00 05 00 08 00 08 00 05 00 08 00 08 "
    "03 2A 00 E8 00 2D 00 06 00 00 00 00 97 00 02 B4"  # sum checked by hand
)
FRAME_WORDS = (5, 8, 8, 5, 8, 8, 810, 232, 45, 6, 0, 0, 0x9700)


@pytest.mark.parametrize(("encoded", "expected"), DATASHEET_COMMANDS)
def test_commands_match_datasheet(encoded, expected):
    assert encoded == bytes.fromhex(expected)


def test_decode_commands_from_datasheet():
    assert pms.decode_command(bytes.fromhex("42 4D E1 00 00 01 70")).frame == (0xE1, 0)
    assert pms.decode_command(bytes.fromhex("42 4D E1 00 00 01 71")).error == "checksum"


def test_hand_written_frame_decodes():
    result = pms.decode(bytes.fromhex(FRAME_HEX))
    assert result.used == 32
    assert result.frame.words == FRAME_WORDS
    assert result.frame.values()["pm2_5"] == 8.0
    assert pms.encode_reading(FRAME_WORDS) == bytes.fromhex(FRAME_HEX)


def test_answer_frame():
    answer = bytes.fromhex("42 4D 00 04 E1 00 01 74")
    assert pms.encode_answer(0xE1, 0x00) == answer
    assert pms.decode(answer).frame == pms.PmsAnswer(0xE1, 0x00)


GOOD = bytes.fromhex(FRAME_HEX)
BAD_SUM = GOOD[:-1] + bytes([GOOD[-1] ^ 0xFF])


@pytest.mark.parametrize(
    ("stream", "frames", "checksum_errors", "dropped"),
    [
        (GOOD, 1, 0, 0),
        (GOOD + GOOD, 2, 0, 0),
        (b"\x00\x42\x13" + GOOD, 1, 0, 3),  # garbage with a lone 0x42 before a frame
        (BAD_SUM + GOOD, 1, 1, 32),
        (GOOD[:10], 0, 0, 0),  # need more
        (b"\x42\x4d\x00\x99" + GOOD, 1, 0, 4),  # impossible length
    ],
)
def test_stream_table(stream, frames, checksum_errors, dropped):
    dec = StreamDecoder(pms.decode)
    assert len(dec.feed(stream)) == frames
    assert dec.counters.checksum_errors == checksum_errors
    assert dec.counters.bytes_dropped == dropped


def test_split_frame_across_reads():
    dec = StreamDecoder(pms.decode)
    for cut in range(1, 32):
        assert dec.feed(GOOD[:cut]) == []
        assert [f.words for f in dec.feed(GOOD[cut:])] == [FRAME_WORDS]
    assert dec.counters.bytes_dropped == 0


def test_encode_refuses_out_of_range():
    with pytest.raises(FrameError):
        pms.encode_reading((70000,) * 13)


words = st.tuples(*[st.integers(0, 0xFFFF)] * 13)


@settings(deadline=None, max_examples=200)
@given(words)
def test_roundtrip(ws):
    result = pms.decode(pms.encode_reading(ws))
    assert result.used == 32 and result.frame.words == ws


@settings(deadline=None, max_examples=300)
@given(st.binary(max_size=300))
def test_any_stream_never_raises_nor_yields_bad_frames(data):
    for _at, _used, frame, _err in walk(pms.decode, data):
        if isinstance(frame, pms.PmsReading):
            encoded = pms.encode_reading(frame.words)
            assert pms.checksum(encoded[:30]) == int.from_bytes(encoded[30:], "big")
            assert encoded in data


@settings(deadline=None, max_examples=300)
@given(st.binary(max_size=120), words, st.binary(max_size=40))
def test_frame_in_noise_is_found(before, ws, after):
    frame = pms.encode_reading(ws)
    steps = walk(pms.decode, before + frame + after)
    got = found_at(steps, len(before))
    if got is None:
        # Only a checksum-valid frame made of noise may hide it.
        assert overlapped_by_other_frame(steps, len(before))
    else:
        assert got.words == ws
