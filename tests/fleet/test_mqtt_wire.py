"""The ingest's MQTT codecs over byte vectors (MQTT 5.0 spec examples and captures)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleet_api.mqtt_wire import (
    MqttError,
    parse_publish,
    pubacks,
    publish0_packet,
    read_varint,
    split,
    subscribe_packet,
    varint,
)

# MQTT 5.0 section 1.5.5: variable byte integer boundaries.
VARINTS = [(0, b"\x00"), (127, b"\x7f"), (128, b"\x80\x01"), (16383, b"\xff\x7f"),
           (16384, b"\x80\x80\x01"), (2097151, b"\xff\xff\x7f"),
           (2097152, b"\x80\x80\x80\x01"), (268435455, b"\xff\xff\xff\x7f")]


@pytest.mark.parametrize(("value", "encoded"), VARINTS)
def test_varint_table(value: int, encoded: bytes) -> None:
    assert varint(value) == encoded
    assert read_varint(encoded, 0) == (value, len(encoded))


@given(st.integers(0, 268435455))
def test_varint_round_trip(value: int) -> None:
    assert read_varint(varint(value), 0) == (value, len(varint(value)))


def test_varint_malformed_and_partial() -> None:
    assert read_varint(b"\x80\x80", 0) is None
    with pytest.raises(MqttError):
        read_varint(b"\xff\xff\xff\xff\x01", 0)


# A QoS 1 PUBLISH as Mosquitto sends it: topic "a/b", packet id 10, no properties.
QOS1 = bytes([0x32, 10, 0, 3]) + b"a/b" + b"\x00\x0a" + b"\x00" + b"hi"


def test_publish_qos1_and_split_keeps_the_partial_tail() -> None:
    buf = QOS1 + QOS1[:5]
    packets, used = split(buf)
    assert used == len(QOS1) and len(packets) == 1
    kind, flags, body = packets[0]
    msg = parse_publish(flags, body)
    assert (kind, msg.topic, msg.mid, msg.qos, msg.payload, msg.retain) == (
        3, "a/b", 10, 1, b"hi", False)


def test_publish_with_properties_and_retain() -> None:
    props = b"\x01\x01"  # payload format indicator = 1
    body = b"\x00\x01t" + varint(len(props)) + props + b"{}"
    flags, got = split(bytes([0x31]) + varint(len(body)) + body)[0][0][1:]
    msg = parse_publish(flags, got)
    assert (msg.topic, msg.qos, msg.retain, msg.payload) == ("t", 0, True, b"{}")


def test_outgoing_packets() -> None:
    assert pubacks([1, 258]) == b"\x40\x02\x00\x01\x40\x02\x01\x02"
    assert publish0_packet("t", b"x") == b"\x30\x05\x00\x01t\x00x"
    assert subscribe_packet(1, [("a/#", 1)]) == b"\x82\x09\x00\x01\x00\x00\x03a/#\x01"
