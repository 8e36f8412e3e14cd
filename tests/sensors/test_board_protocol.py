"""Simpul board protocol: byte vectors, CRC check value, properties, negotiation."""

import contextlib

import pytest
from cobs import cobs
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_bridge import board_protocol as bp
from firmware_bridge.errors import FrameError
from firmware_bridge.framing import StreamDecoder
from tests.sensors.framer_props import walk

pytestmark = pytest.mark.py39


def test_crc_is_ccitt_false():
    # The catalogue check value of CRC-16/CCITT-FALSE over "123456789".
    assert bp.crc16(b"123456789") == 0x29B1


# Vectors from the encoder, checked by hand against the layout in docs/firmware-bridge.md.
VECTORS = [
    # HELLO_REQUEST, seq 0: body 01 0A 00 | crc 0x1467 -> 00 COBS [03 01 0A][03 67 14] 00.
    (bp.HelloRequest(), 0, "00 03 01 0a 03 67 14 00"),
    # READING seq 5: uptime 1000 ms (E8 03 00 00), 1 value: channel 1, status 0,
    # raw 1234 (D2 04 00 00; 123.4 with exponent -1), crc 0x0321.
    (bp.Reading(1000, ((1, 0, 1234),)), 5,
     "00 06 01 03 05 e8 03 01 03 01 01 03 d2 04 01 03 21 03 00"),
]


@pytest.mark.parametrize(("msg", "seq", "wire"), VECTORS)
def test_vectors(msg, seq, wire):
    encoded = bp.encode(msg, seq)
    assert encoded == bytes.fromhex(wire)
    body = cobs.decode(encoded[1:-1])
    assert bp.crc16(body[:-2]) == int.from_bytes(body[-2:], "little")
    (frame,) = bp.frames_in(encoded)
    assert (frame.version, frame.seq) == (1, seq)
    assert bp.parse(frame) == msg


channels = st.lists(
    st.builds(bp.Channel, st.integers(0, 255), st.integers(0, 9), st.integers(-6, 6),
              st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=16)),
    max_size=8,
).map(tuple)
i32 = st.integers(-(2**31), 2**31 - 1)
u8 = st.integers(0, 255)
messages = st.one_of(
    st.builds(bp.Hello, u8, u8, st.binary(min_size=8, max_size=8),
              st.tuples(u8, u8, u8), channels),
    st.builds(bp.HelloAck, u8, u8),
    st.builds(bp.Reading, st.integers(0, 2**32 - 1),
              st.lists(st.tuples(u8, u8, i32), max_size=40).map(tuple)),
    st.builds(bp.ConfigGet, u8),
    st.builds(bp.ConfigSet, u8, i32),
    st.builds(bp.Ack, u8, u8, i32),
    st.builds(bp.Nack, u8, u8),
    st.builds(bp.Log, st.integers(0, 3), st.text(max_size=60)),
    st.builds(bp.Heartbeat, st.integers(0, 2**32 - 1), st.integers(0, 0xFFFF)),
    st.just(bp.HelloRequest()),
)


@settings(deadline=None, max_examples=300)
@given(messages, u8)
def test_roundtrip(msg, seq):
    encoded = bp.encode(msg, seq)
    assert encoded.count(0) == 2 and encoded[0] == 0 and encoded[-1] == 0
    assert len(encoded) <= bp.MAX_ENCODED + 2
    assert bp.decode(encoded) == bp.Decoded(1)  # the leading delimiter: idle
    result = bp.decode(encoded[1:])
    assert result.used == len(encoded) - 1
    assert result.frame.seq == seq
    assert bp.parse(result.frame) == msg


@settings(deadline=None, max_examples=300)
@given(st.binary(max_size=400))
def test_any_stream_never_raises_nor_yields_bad_frames(data):
    for _at, _used, frame, _err in walk(bp.decode, data):
        if frame is not None:
            head = bytes([frame.version, frame.type, frame.seq]) + frame.payload
            body = head + bp.crc16(head).to_bytes(2, "little")
            assert cobs.encode(body) + b"\x00" in data
            # A CRC-valid frame of noise may still be an unknown message.
            with contextlib.suppress(FrameError):
                bp.parse(frame)


@settings(deadline=None, max_examples=300)
@given(st.binary(max_size=300), messages, u8, st.binary(max_size=60))
def test_frame_after_a_delimiter_in_noise_is_found(noise, msg, seq, after):
    # A receiver joining mid-stream finds every frame: each starts with a delimiter.
    stream = noise + bp.encode(msg, seq) + after
    dec = StreamDecoder(bp.decode)
    found = []
    for frame in dec.feed(stream):
        with contextlib.suppress(FrameError):  # noise that happened to carry a valid CRC
            found.append(bp.parse(frame))
    assert msg in found


def test_bad_crc_is_counted_and_next_frame_survives():
    good = bp.encode(bp.Heartbeat(5, 0), 1)
    body = bytearray(cobs.decode(good[1:-1]))
    body[4] ^= 0x10
    bad = b"\x00" + cobs.encode(bytes(body)) + b"\x00"
    dec = StreamDecoder(bp.decode)
    frames = dec.feed(bad + b"\x00\x00" + good)
    assert [bp.parse(f) for f in frames] == [bp.Heartbeat(5, 0)]
    assert dec.counters.checksum_errors == 1
    assert dec.counters.bytes_dropped == len(bad) - 1  # the leading 0x00 is idle


def test_overlong_garbage_without_delimiter_is_dropped():
    dec = StreamDecoder(bp.decode)
    assert dec.feed(b"\x01" * 600) == []
    assert dec.counters.bytes_dropped == 600
    assert dec.feed(bp.encode(bp.HelloRequest(), 9))[0].seq == 9


def test_hello_always_travels_as_version_1():
    (frame,) = bp.frames_in(bp.encode(bp.Hello(1, 3, b"ABCDEFGH", (1, 0, 0), ()), 0, version=3))
    assert frame.version == 1


def test_newer_payloads_with_trailing_fields_still_parse():
    (frame,) = bp.frames_in(bp.encode(bp.Heartbeat(7, 1), 2))
    longer = bp.BoardFrame(2, frame.type, frame.seq, frame.payload + b"\x99\x98")
    assert bp.parse(longer) == bp.Heartbeat(7, 1)


@pytest.mark.parametrize(
    ("board", "host", "expected"),
    [((1, 1), (1, 1), 1), ((1, 3), (1, 2), 2), ((2, 4), (1, 5), 4), ((1, 1), (1, 4), 1)],
)
def test_negotiate(board, host, expected):
    assert bp.negotiate(*board, *host) == expected


def test_negotiate_refuses_disjoint_versions():
    with pytest.raises(FrameError, match="board speaks versions 3-4"):
        bp.negotiate(3, 4, 1, 2)


@pytest.mark.parametrize(("last", "seq", "lost"), [(0, 1, 0), (5, 8, 2), (255, 0, 0), (254, 1, 2)])
def test_seq_gap(last, seq, lost):
    assert bp.seq_gap(last, seq) == lost


def test_unknown_type_and_short_payload_refused():
    with pytest.raises(FrameError, match="unknown message type"):
        bp.parse(bp.BoardFrame(1, 0x7F, 0, b""))
    with pytest.raises(FrameError, match="bad payload"):
        bp.parse(bp.BoardFrame(1, bp.MSG_READING, 0, b"\x01\x02"))


def test_oversized_payload_refused():
    with pytest.raises(FrameError, match="exceeds"):
        bp.encode(bp.Log(1, "x" * 300), 0)
