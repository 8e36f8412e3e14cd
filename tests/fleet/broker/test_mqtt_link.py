"""The ingest's paho adapter: the lean Properties decode the same, and the read buffer
hands paho whole packets however the bytes arrive."""

import socket
import struct
from typing import List

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt import _packet
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import MQTTException, Properties

from fleet_api.broker.mqtt_link import LeanProperties, _BufferedPaho


def _publish_body(topic: str, payload: bytes, mid: int, props: bytes = b"\x00") -> bytes:
    t = topic.encode()
    return struct.pack("!H", len(t)) + t + struct.pack("!H", mid) + props + payload


def _publish_packet(topic: str, payload: bytes, mid: int, props: bytes = b"\x00") -> bytes:
    body = _publish_body(topic, payload, mid, props)
    assert len(body) < 16384
    length = bytes([len(body) & 0x7F | 0x80, len(body) >> 7]) if len(body) > 127 \
        else bytes([len(body)])
    return bytes([0x32]) + length + body


def _properties_bytes() -> bytes:
    p = Properties(PacketTypes.PUBLISH)
    p.ContentType = "application/json"
    p.MessageExpiryInterval = 60
    p.UserProperty = ("a", "1")
    p.UserProperty = ("b", "2")
    return p.pack()


def _public(p: Properties) -> dict:
    return {k: v for k, v in vars(p).items()
            if k not in ("packetType", "types", "names", "properties")}


def test_lean_properties_decode_as_pahos_own() -> None:
    raw = _properties_bytes()
    stock, n1 = Properties(PacketTypes.PUBLISH).unpack(raw)
    lean, n2 = LeanProperties(PacketTypes.PUBLISH).unpack(raw)
    assert n1 == n2
    assert _public(lean) == _public(stock) != {}
    assert str(lean) == str(stock)
    # the shared tables are not changed by a decode, and a second decode starts clean
    again, _ = LeanProperties(PacketTypes.PUBLISH).unpack(b"\x00")
    assert _public(again) == {}
    assert _packet.Properties is LeanProperties
    decoded = _packet.decode_publish(0x32, _publish_body("t/x", b"{}", 7, raw),
                                     MQTTProtocolVersion.MQTTv5)
    assert decoded.payload == b"{}" and decoded.mid == 7
    assert _public(decoded.properties) == _public(stock)


def test_lean_properties_refuse_what_paho_refuses() -> None:
    p = LeanProperties(PacketTypes.PUBLISH)
    with pytest.raises(MQTTException):
        p.NoSuchProperty = 1
    with pytest.raises(MQTTException):
        p.SessionExpiryInterval = 5  # not a PUBLISH property


@pytest.mark.parametrize("split", [1, 2, 3, 7, 64, 1000])
def test_buffered_reads_deliver_every_packet_whatever_the_split(split: int) -> None:
    ours, theirs = socket.socketpair()
    client = _BufferedPaho(CallbackAPIVersion.VERSION2, client_id="t",
                           protocol=mqtt.MQTTv5, manual_ack=True)
    got: List[bytes] = []
    client.on_message = lambda _c, _u, m: got.append(m.payload)
    client._sock = ours  # as connect() would, without a broker
    ours.setblocking(False)
    payloads = [bytes([65 + i % 26]) * (i * 37 % 300) for i in range(40)]
    stream = b"".join(_publish_packet(f"simpul/v1/d{i}/telemetry", p, i + 1,
                                      _properties_bytes() if i % 3 == 0 else b"\x00")
                      for i, p in enumerate(payloads))
    for i in range(0, len(stream), split):
        theirs.sendall(stream[i:i + split])
        while True:
            before = (len(got), client.buffered())
            assert client.loop_read() == mqtt.MQTT_ERR_SUCCESS
            if (len(got), client.buffered()) == before and not client.buffered():
                break
    assert got == payloads
    assert client.buffered() == 0
    ours.close()
    theirs.close()
