"""The STK500v1 framer: byte vectors as avrdude 7.1 (-c arduino) sends them and as
Optiboot answers, and property tests over how a reply may be split by the port."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from firmware_bridge.flasher import stk500
from simulator.stk500 import Bootloader, split_request

# Requests: (built by, bytes avrdude 7.1 sent for the same request, from its -vvvv log)
REQUESTS = [
    (stk500.get_sync(), "30 20"),
    (stk500.get_parameter(0x81), "41 81 20"),
    (stk500.get_parameter(0x82), "41 82 20"),
    (stk500.enter_progmode(), "50 20"),
    (stk500.leave_progmode(), "51 20"),
    (stk500.read_sign(), "75 20"),
    (stk500.load_address(0x0000), "55 00 00 20"),
    (stk500.load_address(0x0080), "55 40 00 20"),     # byte 0x80 is word 0x40
    (stk500.load_address(0x7E00), "55 00 3f 20"),
    (stk500.read_page(128), "74 00 80 46 20"),
    (stk500.prog_page(bytes([0x0C, 0x94, 0x34, 0x00])), "64 00 04 46 0c 94 34 00 20"),
]


@pytest.mark.py39
@pytest.mark.parametrize("request_, wire", REQUESTS, ids=[r[0].name for r in REQUESTS])
def test_requests_match_avrdude_bytes(request_: stk500.Request, wire: str) -> None:
    assert request_.frame == bytes.fromhex(wire)


@pytest.mark.py39
def test_prog_page_of_a_full_page_carries_a_big_endian_count() -> None:
    frame = stk500.prog_page(bytes(range(128))).frame
    assert frame[:4] == bytes.fromhex("64 00 80 46")
    assert frame[4:-1] == bytes(range(128)) and frame[-1] == 0x20


@pytest.mark.py39
@pytest.mark.parametrize("bad", [lambda: stk500.load_address(1),
                                 lambda: stk500.load_address(0x20000),
                                 lambda: stk500.prog_page(b""),
                                 lambda: stk500.read_page(257)])
def test_impossible_requests_are_refused(bad) -> None:
    with pytest.raises(ValueError):
        bad()


# Replies: (bytes received, payload length expected, used, payload, error)
REPLIES = [
    ("", 0, 0, None, None),
    ("14", 0, 0, None, None),                         # need the OK
    ("14 10", 0, 2, b"", None),
    ("14 10 14 10", 0, 2, b"", None),                 # the next reply stays unread
    ("14 1e 95 0f 10", 3, 5, b"\x1e\x95\x0f", None),  # READ_SIGN, ATmega328P
    ("14 1e 95", 3, 0, None, None),
    ("14 04 10", 1, 3, b"\x04", None),                # GET_PARAMETER 0x81: Optiboot 4
    ("15", 0, 1, None, stk500.NOSYNC),
    ("15 14 10", 0, 3, None, stk500.NOSYNC),
    ("e0 10", 0, 2, None, stk500.BAD_START),          # line noise
    ("00", 0, 1, None, stk500.BAD_START),
    ("14 11", 0, 2, None, stk500.BAD_END),            # FAILED
    ("14 aa bb 12", 2, 4, None, stk500.BAD_END),
]


@pytest.mark.py39
@pytest.mark.parametrize("wire, length, used, payload, error", REPLIES)
def test_decode_reply_table(wire: str, length: int, used: int, payload, error) -> None:
    got = stk500.decode_reply(bytes.fromhex(wire), length)
    assert (got.used, got.frame, got.error) == (used, payload, error)


@pytest.mark.py39
@given(payload=st.binary(max_size=256), cut=st.integers(min_value=0, max_value=258))
def test_a_reply_split_anywhere_decodes_once_complete(payload: bytes, cut: int) -> None:
    wire = bytes([stk500.STK_INSYNC]) + payload + bytes([stk500.STK_OK])
    cut = min(cut, len(wire))
    head = stk500.decode_reply(wire[:cut], len(payload))
    if cut < len(wire):
        assert head.used == 0 and head.frame is None
    whole = stk500.decode_reply(wire, len(payload))
    assert (whole.used, whole.frame) == (len(wire), payload)


@pytest.mark.py39
@given(page=st.binary(min_size=1, max_size=128),
       word=st.integers(min_value=0, max_value=0x3FFF // 2))
def test_simulated_bootloader_stores_what_the_framer_sends(page: bytes, word: int) -> None:
    """Two independent codecs (the flasher's framer, the simulator's parser) agree."""
    boot = Bootloader()
    address = word * 2 * 64 % 0x7E00 // 128 * 128
    out = boot.feed(stk500.load_address(address).frame + stk500.prog_page(page).frame)
    assert out == bytes.fromhex("14 10 14 10")
    back = boot.feed(stk500.load_address(address).frame + stk500.read_page(len(page)).frame)
    reply = stk500.decode_reply(back[2:], len(page))
    assert reply.frame == page


@pytest.mark.py39
@given(data=st.binary(max_size=300))
def test_split_request_never_overruns(data: bytes) -> None:
    used, request = split_request(data)
    assert 0 <= used <= len(data)
    assert (used == 0) == (request is None)
