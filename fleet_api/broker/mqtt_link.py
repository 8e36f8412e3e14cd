"""The ingest's MQTT connection: paho-mqtt driven from the ingest's own loop.

A thin adapter so the ingest reads a batch, commits it, then acknowledges it (manual
ack), with no thread of paho's own. The protocol is paho's; nothing here speaks MQTT.

paho is driven the way its docs describe for an external event loop (our select, then
`loop_read` / `loop_write` / `loop_misc`), and its two socket hooks are buffered:
- paho reads a packet in three or more `recv()` calls (type byte, each length byte, body)
  and needs a `select()` per packet; reads here come from one `recv()` of up to 256 KiB;
- paho sends every PUBACK with its own `send()`; while the ingest acknowledges a committed
  batch the writes gather and go out together (`corked`).
Profiled at 30,000 messages, these syscalls were a third of the ingest's time
(docs/benchmarks/fleet.md).

And paho builds a `Properties` for every received PUBLISH from tables it rebuilds each
time (27 names, each compared with `str.replace` and `hasattr`, twice): 33 us of a
message's ~100 us budget here. `LeanProperties` is the same class with those tables made
once; paho's PUBLISH decoder uses it in the processes that import this module.
"""

import select
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, List, Optional, Tuple

import paho.mqtt._packet as paho_packet
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from fleet_api.errors import FleetError
from simpul_wire.transport import no_delay

READ_CHUNK = 256 * 1024
SEND_TIMEOUT_S = 10.0


_PRIVATE = ("packetType", "types", "names", "properties")


class LeanProperties(Properties):
    """paho's Properties, sharing the read-only tables of one instance made at import."""

    _tables = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]

    def __init__(self, packetType: int) -> None:
        tables = LeanProperties._tables
        object.__setattr__(self, "packetType", packetType)
        object.__setattr__(self, "types", tables.types)
        object.__setattr__(self, "names", tables.names)
        object.__setattr__(self, "properties", tables.properties)

    def clear(self) -> None:
        # Every attribute that is not one of the four tables is a property value.
        for name in [k for k in self.__dict__ if k not in _PRIVATE]:
            delattr(self, name)


paho_packet.Properties = LeanProperties  # type: ignore[attr-defined,misc]


class MqttError(FleetError):
    """The broker refused us, or the connection went away."""


@dataclass
class Message:
    topic: str
    payload: bytes
    mid: int
    qos: int
    retain: bool


class _BufferedPaho(mqtt.Client):
    """paho with a read buffer and corkable writes under its `_sock_recv`/`_sock_send`
    (the only two places paho touches the socket's data; pinned by paho-mqtt<3)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._rbuf = b""
        self._rpos = 0
        self._corked = False
        self._wbuf = bytearray()

    def buffered(self) -> int:
        """Bytes read from the socket that paho has not consumed yet."""
        return len(self._rbuf) - self._rpos

    def _sock_recv(self, bufsize: int) -> bytes:
        if self._rpos >= len(self._rbuf):
            data = super()._sock_recv(READ_CHUNK)  # BlockingIOError: nothing to read
            if not data:
                return data  # EOF: paho reports the connection lost
            self._rbuf, self._rpos = data, 0
        chunk = self._rbuf[self._rpos:self._rpos + bufsize]
        self._rpos += len(chunk)
        return chunk

    def _sock_send(self, buf: Any) -> int:
        if self._corked:
            self._wbuf += buf
            return len(buf)
        return super()._sock_send(buf)

    def reset_buffers(self) -> None:
        self._rbuf, self._rpos = b"", 0
        self._corked = False
        self._wbuf = bytearray()

    @contextmanager
    def corked(self) -> Iterator[None]:
        """Gather everything paho writes inside, then send it (OSError if it cannot)."""
        self._corked = True
        try:
            yield
        finally:
            self._corked = False
        pending, self._wbuf = bytes(self._wbuf), bytearray()
        sock = self.socket()
        if not pending:
            return
        if sock is None:
            raise OSError("not connected")
        deadline = time.monotonic() + SEND_TIMEOUT_S
        data = memoryview(pending)
        while data:
            try:
                sent = sock.send(data)  # type: ignore[arg-type]  # any buffer will do
            except BlockingIOError:
                sent = 0
            data = data[sent:]
            if data:
                if time.monotonic() > deadline:
                    raise OSError("the broker stopped reading")
                select.select([], [sock], [], 1.0)


class Client:
    def __init__(self, client_id: str, username: str, password: str) -> None:
        self._c = _BufferedPaho(CallbackAPIVersion.VERSION2, client_id=client_id,
                                protocol=mqtt.MQTTv5, manual_ack=True)
        self._c.username_pw_set(username, password)
        self._c.max_inflight_messages_set(1000)
        self._c.on_socket_open = lambda _c, _u, sock: no_delay(sock)
        self._inbox: List[Message] = []
        self._connack: Optional[ReasonCode] = None
        self.session_present = False
        self._c.on_connect = self._on_connect
        self._c.on_message = self._on_message

    def _on_connect(self, _c: Any, _ud: Any, flags: Any, reason: ReasonCode, _p: Any) -> None:
        self._connack = reason
        self.session_present = bool(getattr(flags, "session_present", False))

    def _on_message(self, _c: Any, _ud: Any, msg: mqtt.MQTTMessage) -> None:
        self._inbox.append(Message(msg.topic, bytes(msg.payload), msg.mid, msg.qos,
                                   bool(msg.retain)))

    def connect(self, host: str, port: int, keepalive: int = 30, clean_start: bool = False,
                session_expiry: int = 0, receive_max: int = 65535, timeout: float = 10.0
                ) -> None:
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = session_expiry
        props.ReceiveMaximum = receive_max
        self._connack = None
        self._inbox = []
        self._c.reset_buffers()
        self._c.connect(host, port, keepalive=keepalive, clean_start=clean_start,
                        properties=props)
        deadline = time.monotonic() + timeout
        while self._connack is None:
            self._pump(0.1)
            if time.monotonic() > deadline:
                raise MqttError("no CONNACK")
        if self._connack.is_failure:
            raise MqttError(f"broker refused the connection: {self._connack}")

    def subscribe(self, filters: List[Tuple[str, int]]) -> None:
        self._c.subscribe(filters)

    def _check(self, rc: int) -> None:
        if rc != mqtt.MQTT_ERR_SUCCESS:
            raise MqttError(f"connection lost: {mqtt.error_string(rc)}")

    def _pump(self, timeout: float) -> None:
        """One round of paho's external-loop API: wait for the socket (not when bytes
        are already buffered), read what came, write what is queued, keepalive."""
        sock = self._c.socket()
        if sock is None:
            raise MqttError("connection lost: not connected")
        if not self._c.buffered():
            wlist = [sock] if self._c.want_write() else []
            readable, writable, _ = select.select([sock], wlist, [], timeout)
            if writable:
                self._check(self._c.loop_write())
            if not readable:
                self._check(self._c.loop_misc())
                return
        self._check(self._c.loop_read())
        self._check(self._c.loop_misc())

    def read(self, timeout: float, limit: int = 1000) -> List[Message]:
        """Messages received within timeout (possibly none), up to about `limit`, taking
        everything already buffered; MqttError when the link died."""
        self._pump(timeout)
        while self._c.buffered() and len(self._inbox) < limit:
            self._check(self._c.loop_read())
        out, self._inbox = self._inbox, []
        return out

    def idle(self) -> bool:
        """Nothing buffered and nothing waiting on the socket."""
        if self._c.buffered():
            return False
        sock = self._c.socket()
        return sock is None or not select.select([sock], [], [], 0)[0]

    @contextmanager
    def corked(self) -> Iterator[None]:
        with self._c.corked():
            yield

    def ack(self, mids: List[int]) -> None:
        for mid in mids:
            self._c.ack(mid, 1)

    def publish(self, topic: str, payload: bytes, qos: int = 0) -> None:
        self._c.publish(topic, payload, qos=qos)

    def publish0(self, topic: str, payload: bytes) -> None:
        self._c.publish(topic, payload, qos=0)

    def close(self) -> None:
        sock = self._c.socket()
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass
        self._c.reset_buffers()

    def disconnect(self) -> None:
        try:
            self._c.disconnect()
        except (OSError, ValueError):
            pass
