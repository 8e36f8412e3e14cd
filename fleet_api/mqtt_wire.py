"""A small MQTT v5 client for the ingest: the subset it needs, built for throughput.

Why not paho here: paho reads each packet with several small recv() calls and sends each
PUBACK with its own send(); profiled on a 100,000-message backlog that was most of the
ingest's time (docs/benchmarks/fleet.md). This client reads the socket in large chunks,
parses every complete packet in the buffer, and sends a whole batch of PUBACKs (and the
ingest's QoS 0 confirmations) in one write.

Subset: CONNECT (clean start, session expiry, receive maximum, user/password), CONNACK,
SUBSCRIBE/SUBACK, incoming PUBLISH at QoS 0/1 (no topic aliases: we never allow them),
PUBACK, outgoing QoS 0 PUBLISH, PINGREQ/PINGRESP, DISCONNECT. The packet codecs are
pure functions over bytes (tested in tests/fleet/test_mqtt_wire.py).
"""

import select
import socket
import struct
import time
from dataclasses import dataclass
from typing import List, Optional, Tuple, Union

CONNECT, CONNACK, PUBLISH, PUBACK, SUBSCRIBE, SUBACK = 1, 2, 3, 4, 8, 9
PINGREQ, PINGRESP, DISCONNECT = 12, 13, 14


class MqttError(Exception):
    """The broker refused us, broke the protocol, or went away."""


@dataclass
class Message:
    topic: str
    payload: bytes
    mid: int
    qos: int
    retain: bool


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def read_varint(buf: Union[bytes, bytearray, memoryview], pos: int) -> Optional[Tuple[int, int]]:
    """(value, next position), or None when the buffer ends first."""
    value, shift = 0, 0
    for i in range(pos, min(pos + 4, len(buf))):
        byte = buf[i]
        value += (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, i + 1
        shift += 7
    if len(buf) - pos >= 4:
        raise MqttError("malformed remaining length")
    return None


def _str(s: str) -> bytes:
    data = s.encode()
    return struct.pack("!H", len(data)) + data


def packet(kind: int, flags: int, body: bytes) -> bytes:
    return bytes([kind << 4 | flags]) + varint(len(body)) + body


def connect_packet(client_id: str, username: str, password: str, keepalive: int,
                   clean_start: bool, session_expiry: int, receive_max: int) -> bytes:
    props = b"\x11" + struct.pack("!I", session_expiry) + b"\x21" + \
        struct.pack("!H", receive_max)
    flags = 0x80 | 0x40 | (0x02 if clean_start else 0)
    var = _str("MQTT") + bytes([5, flags]) + struct.pack("!H", keepalive) + \
        varint(len(props)) + props
    pw = password.encode()
    payload = _str(client_id) + _str(username) + struct.pack("!H", len(pw)) + pw
    return packet(CONNECT, 0, var + payload)


def subscribe_packet(mid: int, filters: List[Tuple[str, int]]) -> bytes:
    body = struct.pack("!H", mid) + b"\x00"
    for topic_filter, qos in filters:
        body += _str(topic_filter) + bytes([qos])
    return packet(SUBSCRIBE, 0x02, body)


def publish0_packet(topic: str, payload: bytes) -> bytes:
    return packet(PUBLISH, 0, _str(topic) + b"\x00" + payload)


def pubacks(mids: List[int]) -> bytes:
    return b"".join(b"\x40\x02" + struct.pack("!H", m) for m in mids)


def parse_publish(flags: int, body: memoryview) -> Message:
    qos = (flags >> 1) & 3
    tlen = struct.unpack_from("!H", body, 0)[0]
    topic = bytes(body[2:2 + tlen]).decode()
    pos = 2 + tlen
    mid = 0
    if qos:
        mid = struct.unpack_from("!H", body, pos)[0]
        pos += 2
    got = read_varint(body, pos)
    if got is None:
        raise MqttError("truncated PUBLISH properties")
    plen, pos = got
    return Message(topic, bytes(body[pos + plen:]), mid, qos, bool(flags & 1))


def split(buf: bytes) -> Tuple[List[Tuple[int, int, memoryview]], int]:
    """Complete packets in `buf` as (type, flags, body) and how many bytes they used."""
    out = []
    pos = 0
    view = memoryview(buf)
    n = len(buf)
    while n - pos >= 2:
        got = read_varint(buf, pos + 1)
        if got is None:
            break
        length, start = got
        end = start + length
        if end > n:
            break
        first = buf[pos]
        out.append((first >> 4, first & 0x0F, view[start:end]))
        pos = end
    return out, pos


class Client:
    """Blocking socket, one thread. `read()` returns the PUBLISHes that arrived."""

    def __init__(self, client_id: str, username: str, password: str) -> None:
        self.client_id = client_id
        self.username = username
        self.password = password
        self.sock: Optional[socket.socket] = None
        self.buf = bytearray()
        self.out = bytearray()
        self.keepalive = 30
        self._last_out = 0.0
        self._ping_sent: Optional[float] = None
        self.session_present = False

    # -- connection -------------------------------------------------------------------
    def connect(self, host: str, port: int, keepalive: int = 30, clean_start: bool = False,
                session_expiry: int = 0, receive_max: int = 65535, timeout: float = 10.0
                ) -> None:
        self.close()
        sock = socket.create_connection((host, port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
        self.sock = sock
        self.buf = bytearray()
        self.out = bytearray()
        self.keepalive = keepalive
        self._ping_sent = None
        sock.sendall(connect_packet(self.client_id, self.username, self.password, keepalive,
                                    clean_start, session_expiry, receive_max))
        deadline = time.monotonic() + timeout
        while True:
            got = read_varint(self.buf, 1) if len(self.buf) >= 2 else None
            if got is not None and got[1] + got[0] <= len(self.buf):
                length, start = got
                body = bytes(self.buf[start:start + length])
                kind = self.buf[0] >> 4
                if kind != CONNACK or len(body) < 2:
                    raise MqttError(f"expected CONNACK, got packet type {kind}")
                if body[1] != 0:
                    raise MqttError(f"broker refused the connection: reason 0x{body[1]:02x}")
                self.session_present = bool(body[0] & 1)
                # Drop exactly the CONNACK; queued PUBLISHes after it stay.
                del self.buf[:start + length]
                break
            if time.monotonic() > deadline:
                raise MqttError("no CONNACK")
            self._recv(deadline - time.monotonic())
        sock.settimeout(None)
        self._last_out = time.monotonic()

    def close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None

    def disconnect(self) -> None:
        if self.sock is not None:
            try:
                self.flush()
                self.sock.sendall(b"\xe0\x00")
            except OSError:
                pass
        self.close()

    # -- I/O ----------------------------------------------------------------------------
    def _recv(self, timeout: float) -> bool:
        assert self.sock is not None
        ready, _, _ = select.select([self.sock], [], [], max(0.0, timeout))
        if not ready:
            return False
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise MqttError("the broker closed the connection")
        self.buf += chunk
        return True

    def subscribe(self, filters: List[Tuple[str, int]], mid: int = 1) -> None:
        self.out += subscribe_packet(mid, filters)
        self.flush()

    def read(self, timeout: float) -> List[Message]:
        """Wait up to `timeout` for data; return every complete PUBLISH received."""
        if self.sock is None:
            raise MqttError("not connected")
        self._keepalive()
        if not self.buf or not split(bytes(self.buf))[0]:
            self._recv(timeout)
        # Take what else is already there without waiting: larger batches.
        while self._recv(0):
            if len(self.buf) > 8 << 20:
                break
        # Parse a snapshot: views into a bytearray would pin it against the trim below.
        packets, used = split(bytes(self.buf))
        messages = []
        for kind, flags, body in packets:
            if kind == PUBLISH:
                messages.append(parse_publish(flags, body))
            elif kind == DISCONNECT:
                reason = body[0] if len(body) else 0
                raise MqttError(f"the broker disconnected us: reason 0x{reason:02x}")
            elif kind == PINGRESP:
                self._ping_sent = None
            elif kind == SUBACK:
                codes = bytes(body[3 + (body[2] if len(body) > 2 else 0):])
                if any(c >= 0x80 for c in codes):
                    raise MqttError(f"subscription refused: {codes.hex()}")
        del self.buf[:used]
        return messages

    def ack(self, mids: List[int]) -> None:
        self.out += pubacks(mids)

    def publish0(self, topic: str, payload: bytes) -> None:
        self.out += publish0_packet(topic, payload)

    def flush(self) -> None:
        if self.out and self.sock is not None:
            self.sock.sendall(self.out)
            self.out = bytearray()
            self._last_out = time.monotonic()

    def _keepalive(self) -> None:
        now = time.monotonic()
        if self._ping_sent is not None and now - self._ping_sent > self.keepalive:
            raise MqttError("no PINGRESP within the keepalive")
        if now - self._last_out > self.keepalive / 2 and self._ping_sent is None:
            self.out += b"\xc0\x00"
            self._ping_sent = now
            self.flush()
