"""The API's own MQTT connection: retained desired config and commands, QoS 1.

A clean session with a per-process client id; `publish` waits for the broker's PUBACK,
so a caller knows the broker holds the message (retained, or queued for the box's
persistent session).
"""

import logging
import os
import secrets
import threading
from typing import Iterable, Optional

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from sqlalchemy import select, update
from sqlalchemy.engine import Engine

from fleet_api.db import devices
from simpul_wire.models import DesiredConfig, encode
from simpul_wire.topics import fleet_name, topic
from simpul_wire.transport import no_delay

log = logging.getLogger("simpul.publisher")


class Publisher:
    def __init__(self, host: str, port: int, username: str, password: str) -> None:
        self.connected = threading.Event()
        client_id = fleet_name(f"api_{os.getpid()}_{secrets.token_hex(3)}")
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=mqtt.MQTTv5)
        self.client.on_socket_open = lambda _c, _u, sock: no_delay(sock)
        self.client.username_pw_set(username, password)
        self.client.on_connect = lambda c, u, f, rc, p: (
            self.connected.set() if not rc.is_failure else None)
        self.client.on_disconnect = lambda c, u, f, rc, p: self.connected.clear()
        self.client.reconnect_delay_set(1, 10)
        self.client.connect_async(host, port, keepalive=30)
        self.client.loop_start()

    def publish(self, topic_name: str, payload: bytes, retain: bool = False,
                expiry_s: Optional[int] = None, timeout: float = 5.0) -> bool:
        """True once the broker acknowledged the message."""
        if not self.connected.wait(timeout):
            return False
        props = None
        if expiry_s is not None:
            props = Properties(PacketTypes.PUBLISH)
            props.MessageExpiryInterval = max(1, int(expiry_s))
        info = self.client.publish(topic_name, payload, qos=1, retain=retain, properties=props)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            return False
        try:
            info.wait_for_publish(timeout)
        except (RuntimeError, ValueError):
            return False
        return info.is_published()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def publish_desired(engine: Engine, publisher: Optional[Publisher],
                    device_ids: Iterable[str]) -> int:
    """Publish each device's current desired config (retained); return how many the
    broker took. The ones it did not stay behind in published_version for the worker."""
    from fleet_api.control.twin import effective

    if publisher is None:
        return 0
    sent = 0
    for device_id in device_ids:
        with engine.connect() as conn:
            row = conn.execute(select(devices).where(devices.c.device_id == device_id)).first()
            if row is None or row.desired_version == 0:
                continue
            config = effective(conn, row)
        message = DesiredConfig(device_id=device_id, version=row.desired_version, config=config)
        if not publisher.publish(topic(device_id, "config/desired"), encode(message),
                                 retain=True):
            log.warning("broker did not take desired config v%d of %s; will retry",
                        row.desired_version, device_id)
            continue
        with engine.begin() as conn:
            conn.execute(update(devices).where(devices.c.device_id == device_id,
                                               devices.c.published_version < row.desired_version)
                         .values(published_version=row.desired_version))
        sent += 1
    return sent
