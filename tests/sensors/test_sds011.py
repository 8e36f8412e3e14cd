"""SDS011 framer: the datasheet's (Laser Dust Sensor Control Protocol V1.3) examples."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_bridge import sds011
from firmware_bridge.errors import FrameError
from firmware_bridge.framing import StreamDecoder
from tests.sensors.framer_props import found_at, overlapped_by_other_frame, walk

pytestmark = pytest.mark.py39

# Host commands as printed in the protocol document (device id FF FF = any).
DATASHEET_COMMANDS = [
    (sds011.reporting_mode_command(query=True),
     "AA B4 02 01 01 00 00 00 00 00 00 00 00 00 00 FF FF 02 AB"),
    (sds011.reporting_mode_command(query=False, set_mode=False),
     "AA B4 02 00 00 00 00 00 00 00 00 00 00 00 00 FF FF 00 AB"),
    (sds011.query_command(),
     "AA B4 04 00 00 00 00 00 00 00 00 00 00 00 00 FF FF 02 AB"),
    (sds011.sleep_work_command(work=False),
     "AA B4 06 01 00 00 00 00 00 00 00 00 00 00 00 FF FF 05 AB"),
    (sds011.sleep_work_command(work=True),
     "AA B4 06 01 01 00 00 00 00 00 00 00 00 00 00 FF FF 06 AB"),
    (sds011.working_period_command(1),
     "AA B4 08 01 01 00 00 00 00 00 00 00 00 00 00 FF FF 08 AB"),
    (sds011.firmware_command(),
     "AA B4 07 00 00 00 00 00 00 00 00 00 00 00 00 FF FF 05 AB"),
]

# Sensor frames from the same document (device id A1 60).
DATASHEET_FRAMES = [
    ("AA C0 D4 04 3A 0A A1 60 1D AB", sds011.SdsReading(0x04D4, 0x0A3A, 0x60A1)),
    ("AA C5 02 01 01 00 A1 60 05 AB", sds011.SdsReply(2, (1, 1, 0), 0x60A1)),
    ("AA C5 06 01 00 00 A1 60 08 AB", sds011.SdsReply(6, (1, 0, 0), 0x60A1)),
    ("AA C5 08 01 01 00 A1 60 0B AB", sds011.SdsReply(8, (1, 1, 0), 0x60A1)),
    ("AA C5 07 0F 07 0A A1 60 28 AB", sds011.SdsReply(7, (15, 7, 10), 0x60A1)),
]


@pytest.mark.parametrize(("encoded", "expected"), DATASHEET_COMMANDS)
def test_commands_match_datasheet(encoded, expected):
    assert encoded == bytes.fromhex(expected)
    assert sds011.decode_command(encoded).used == 19


@pytest.mark.parametrize(("hexed", "expected"), DATASHEET_FRAMES)
def test_frames_from_datasheet(hexed, expected):
    result = sds011.decode(bytes.fromhex(hexed))
    assert (result.used, result.frame) == (10, expected)


def test_measurement_in_physical_units():
    reading = sds011.decode(bytes.fromhex("AA C0 D4 04 3A 0A A1 60 1D AB")).frame
    assert reading.values() == {"pm2_5": 123.6, "pm10": 261.8}


GOOD = bytes.fromhex("AA C0 D4 04 3A 0A A1 60 1D AB")


@pytest.mark.parametrize(
    ("stream", "frames", "checksum_errors", "dropped"),
    [
        (GOOD * 2, 2, 0, 0),
        (b"\x01\xaa\x02" + GOOD, 1, 0, 3),
        (GOOD[:8] + b"\x1e\xab" + GOOD, 1, 1, 10),
        (b"\xaa\xc0\xaa" + GOOD, 1, 0, 2 + 1),
        (GOOD[:9] + b"\x00" + GOOD, 1, 0, 10),  # wrong tail
    ],
)
def test_stream_table(stream, frames, checksum_errors, dropped):
    dec = StreamDecoder(sds011.decode)
    assert len(dec.feed(stream)) == frames
    assert dec.counters.checksum_errors == checksum_errors
    assert dec.counters.bytes_dropped == dropped


def test_split_frame_across_reads():
    dec = StreamDecoder(sds011.decode)
    for cut in range(1, 10):
        assert dec.feed(GOOD[:cut]) == []
        assert len(dec.feed(GOOD[cut:])) == 1


def test_working_period_out_of_range():
    with pytest.raises(FrameError):
        sds011.working_period_command(31)


values = st.integers(0, 0xFFFF)


@settings(deadline=None, max_examples=200)
@given(values, values, values)
def test_roundtrip(pm25, pm10, dev):
    result = sds011.decode(sds011.encode_reading(pm25, pm10, dev))
    assert result.frame == sds011.SdsReading(pm25, pm10, dev)


@settings(deadline=None, max_examples=200)
@given(st.integers(0, 255), st.integers(0, 255), st.integers(0, 255), values)
def test_command_roundtrip(cmd, d1, d2, dev):
    result = sds011.decode_command(sds011.encode_command(cmd, d1, d2, dev))
    assert result.frame == sds011.SdsCommand(cmd, d1, d2, dev)


@settings(deadline=None, max_examples=300)
@given(st.binary(max_size=200))
def test_any_stream_never_raises_nor_yields_bad_frames(data):
    for at, used, frame, _err in walk(sds011.decode, data):
        if frame is not None:
            raw = data[at : at + used]
            assert raw[0] == 0xAA and raw[-1] == 0xAB
            assert sum(raw[2:8]) & 0xFF == raw[8]


@settings(deadline=None, max_examples=300)
@given(st.binary(max_size=80), values, values, st.binary(max_size=20))
def test_frame_in_noise_is_found(before, pm25, pm10, after):
    frame = sds011.encode_reading(pm25, pm10)
    steps = walk(sds011.decode, before + frame + after)
    got = found_at(steps, len(before))
    if got is None:
        assert overlapped_by_other_frame(steps, len(before))
    else:
        assert got == sds011.SdsReading(pm25, pm10, 0xA160)
