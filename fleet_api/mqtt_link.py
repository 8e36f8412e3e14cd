"""The ingest's MQTT connection: paho-mqtt driven synchronously from the ingest's loop.

A thin adapter so the ingest reads a batch, commits it, then acknowledges it (manual
ack), with no thread of paho's own. The protocol is paho's; nothing here speaks MQTT.
"""

import time
from dataclasses import dataclass
from typing import Any, List, Optional, Tuple

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from agent.reactor import no_delay


class MqttError(Exception):
    """The broker refused us, or the connection went away."""


@dataclass
class Message:
    topic: str
    payload: bytes
    mid: int
    qos: int
    retain: bool


class Client:
    def __init__(self, client_id: str, username: str, password: str) -> None:
        self._c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
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
        self._c.connect(host, port, keepalive=keepalive, clean_start=clean_start,
                        properties=props)
        deadline = time.monotonic() + timeout
        while self._connack is None:
            rc = self._c.loop(timeout=0.1)
            if rc != mqtt.MQTT_ERR_SUCCESS:
                raise MqttError(f"connection lost before CONNACK: {mqtt.error_string(rc)}")
            if time.monotonic() > deadline:
                raise MqttError("no CONNACK")
        if self._connack.is_failure:
            raise MqttError(f"broker refused the connection: {self._connack}")

    def subscribe(self, filters: List[Tuple[str, int]]) -> None:
        self._c.subscribe(filters)

    def read(self, timeout: float) -> List[Message]:
        """Messages received within timeout (possibly none); MqttError when the link died."""
        rc = self._c.loop(timeout=timeout)
        if rc != mqtt.MQTT_ERR_SUCCESS:
            raise MqttError(f"connection lost: {mqtt.error_string(rc)}")
        out, self._inbox = self._inbox, []
        return out

    def ack(self, mids: List[int]) -> None:
        for mid in mids:
            self._c.ack(mid, 1)

    def publish(self, topic: str, payload: bytes, qos: int = 0) -> None:
        self._c.publish(topic, payload, qos=qos)

    def publish0(self, topic: str, payload: bytes) -> None:
        self._c.publish(topic, payload, qos=0)

    def flush(self) -> None:
        self._c.loop_write()

    def close(self) -> None:
        sock = self._c.socket()
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass

    def disconnect(self) -> None:
        try:
            self._c.disconnect()
        except (OSError, ValueError):
            pass
