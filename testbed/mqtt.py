"""A small synchronous MQTT v5 client for assertions: publish and wait for the PUBACK's
reason code, subscribe and wait for the SUBACK's, collect what arrives."""

from typing import Dict, List, Optional, Tuple

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from testbed.harness import wait_until


class Client:
    """A small synchronous MQTT v5 client for assertions."""

    def __init__(self, port: int, username: Optional[str], password: Optional[str],
                 client_id: str = "") -> None:
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                             protocol=mqtt.MQTTv5)
        if username is not None:
            self.c.username_pw_set(username, password)
        self.connack: Optional[ReasonCode] = None
        self.acks: Dict[int, ReasonCode] = {}
        self.subacks: List[List[ReasonCode]] = []
        self.messages: List[Tuple[str, bytes]] = []
        self.c.on_connect = lambda c, u, f, rc, p: setattr(self, "connack", rc)
        self.c.on_publish = lambda c, u, mid, rc, p: self.acks.__setitem__(mid, rc)
        self.c.on_subscribe = lambda c, u, mid, rcs, p: self.subacks.append(rcs)
        self.c.on_message = lambda c, u, m: self.messages.append((m.topic, bytes(m.payload)))
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()
        wait_until(lambda: self.connack is not None, 5, what="CONNACK")

    def publish(self, topic: str, payload: bytes) -> ReasonCode:
        info = self.c.publish(topic, payload, qos=1)
        return wait_until(lambda: self.acks.get(info.mid), 5, what="PUBACK")  # type: ignore[no-any-return]

    def subscribe(self, topic: str) -> ReasonCode:
        before = len(self.subacks)
        self.c.subscribe(topic, qos=1)
        wait_until(lambda: len(self.subacks) > before, 5, what="SUBACK")
        return self.subacks[-1][0]

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()
