"""The MQTT link of one box: birth and last will, reconnect with backoff and jitter,
QoS 1 publishes whose acknowledgements the caller hears about.

MQTT v5 with a persistent session (clean_start false, a session expiry), so commands
sent while the box is offline wait for it at the broker. The client id is the device
id; the device listener also forces it (use_username_as_clientid).
"""

import logging
import random
import ssl
from dataclasses import dataclass
from typing import Callable, Dict, Optional, Tuple

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from agent.errors import LinkError
from agent.reactor import Reactor, Timer
from simpul_wire.models import StatePayload, encode
from simpul_wire.topics import topic

log = logging.getLogger("simpul.link")

SESSION_EXPIRY_S = 7 * 24 * 3600
BACKOFF_BASE_S = 1.0
BACKOFF_MAX_S = 60.0

AckCallback = Callable[[bool], None]
MessageCallback = Callable[[str, bytes], None]


@dataclass(frozen=True)
class LinkSettings:
    device_id: str
    host: str
    port: int
    username: str
    password: Optional[str]
    keepalive_s: int = 30
    ca_file: Optional[str] = None
    cert_file: Optional[str] = None
    key_file: Optional[str] = None
    tls: bool = False
    agent_version: str = ""
    boot_id: str = ""


def backoff_delay(attempt: int, rng: random.Random) -> float:
    """Exponential backoff with jitter: spread a city's reconnects after an outage."""
    ceiling = min(BACKOFF_MAX_S, BACKOFF_BASE_S * (2 ** min(attempt, 10)))
    return float(ceiling * rng.uniform(0.5, 1.0))


class Link:
    def __init__(self, reactor: Reactor, settings: LinkSettings,
                 on_message: Optional[MessageCallback] = None,
                 on_online: Optional[Callable[[bool], None]] = None,
                 subscriptions: Tuple[str, ...] = (),
                 rng: Optional[random.Random] = None) -> None:
        self.settings = settings
        self.connected = False
        self.reconnects = 0
        self.refused = 0
        self._reactor = reactor
        self._on_message = on_message
        self._on_online = on_online
        self._subscriptions = subscriptions
        self._rng = rng or random.Random()
        self._attempt = 0
        self._pending: Dict[int, AckCallback] = {}
        self._retry: Optional[Timer] = None
        self._stopped = False
        # Credential rotation (agent.credentials): the password for each attempt, and
        # each CONNACK's verdict (one listener: rotation is the only one that asks).
        self.password_source: Optional[Callable[[], Optional[str]]] = None
        self.on_auth: Optional[Callable[[bool], None]] = None
        self.client = self._make_client()
        reactor.attach(self.client)

    def _make_client(self) -> mqtt.Client:
        s = self.settings
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=s.device_id, protocol=mqtt.MQTTv5
        )
        client.username_pw_set(s.username, s.password)
        if s.tls:
            try:
                client.tls_set(ca_certs=s.ca_file, certfile=s.cert_file, keyfile=s.key_file,
                               cert_reqs=ssl.CERT_REQUIRED)
            except (OSError, ssl.SSLError) as exc:
                raise LinkError(f"TLS files unusable: {exc}") from exc
        client.max_inflight_messages_set(1000)
        client.max_queued_messages_set(0)
        client.will_set(topic(s.device_id, "state"), self._state("offline"), qos=1, retain=True)
        client.on_connect = self._connected
        client.on_disconnect = self._disconnected
        client.on_publish = self._published
        client.on_message = self._message
        return client

    def _state(self, state: str) -> bytes:
        s = self.settings
        return encode(StatePayload(device_id=s.device_id, state=state,  # type: ignore[arg-type]
                                   agent_version=s.agent_version or None,
                                   boot_id=s.boot_id or None))

    # -- connecting -------------------------------------------------------------------
    def start(self) -> None:
        self._stopped = False
        self._reactor.call_later(0, self._connect)

    def _connect(self) -> None:
        if self._stopped or self.connected:
            return
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        self._use_password()
        try:
            self.client.connect(self.settings.host, self.settings.port,
                                keepalive=self.settings.keepalive_s, clean_start=False,
                                properties=props)
        except (OSError, ssl.SSLError) as exc:
            log.info("broker %s:%s unreachable: %s", self.settings.host, self.settings.port, exc)
            self._schedule_retry()

    def _schedule_retry(self) -> None:
        if self._stopped:
            return
        if self._retry is not None:
            self._retry.cancel()
        delay = backoff_delay(self._attempt, self._rng)
        self._attempt += 1
        self._retry = self._reactor.call_later(delay, self._reconnect)

    def _reconnect(self) -> None:
        self._retry = None
        if self._stopped or self.connected:
            return
        self._use_password()
        try:
            self.client.reconnect()
        except (OSError, ssl.SSLError) as exc:
            log.info("reconnect failed: %s", exc)
            self._schedule_retry()

    def _use_password(self) -> None:
        if self.password_source is not None:
            self.client.username_pw_set(self.settings.username, self.password_source())

    def _connected(self, client: mqtt.Client, _ud: object, _flags: object,
                   reason: ReasonCode, _props: object) -> None:
        if self.on_auth is not None:
            self.on_auth(not reason.is_failure)
        if reason.is_failure:
            self.refused += 1
            log.warning("broker refused the connection: %s", reason)
            return  # the broker closes the socket; _disconnected schedules the retry
        self.connected = True
        self._attempt = 0
        self.reconnects += 1
        client.publish(topic(self.settings.device_id, "state"), self._state("online"),
                       qos=1, retain=True)
        for sub in self._subscriptions:
            client.subscribe(sub, qos=1)
        if self._on_online:
            self._on_online(True)

    def _disconnected(self, _client: mqtt.Client, _ud: object, _flags: object,
                      reason: ReasonCode, _props: object) -> None:
        was = self.connected
        self.connected = False
        # paho re-sends unacknowledged QoS 1 messages itself after a reconnect, keeping
        # their message ids, so pending callbacks stay until their PUBACK arrives.
        if was and self._on_online:
            self._on_online(False)
        if not self._stopped:
            self._schedule_retry()

    # -- traffic ----------------------------------------------------------------------
    @property
    def in_flight(self) -> int:
        return len(self._pending)

    def publish(self, name: str, payload: bytes, on_ack: Optional[AckCallback] = None,
                retain: bool = False) -> bool:
        """QoS 1 publish; on_ack(True) once the broker accepted it. False if offline."""
        if not self.connected:
            return False
        info = self.client.publish(name, payload, qos=1, retain=retain)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            return False
        if on_ack is not None:
            self._pending[info.mid] = on_ack
        return True

    def _published(self, _client: mqtt.Client, _ud: object, mid: int, reason: ReasonCode,
                   _props: object) -> None:
        callback = self._pending.pop(mid, None)
        if callback is None:
            return
        ok = not reason.is_failure
        if not ok:
            log.warning("broker refused publish %s: %s", mid, reason)
        callback(ok)

    def _message(self, _client: mqtt.Client, _ud: object, msg: mqtt.MQTTMessage) -> None:
        if self._on_message:
            self._on_message(msg.topic, bytes(msg.payload))

    def stop(self) -> None:
        """Say offline on purpose (retained), then disconnect."""
        self._stopped = True
        if self._retry is not None:
            self._retry.cancel()
        if self.connected:
            self.client.publish(topic(self.settings.device_id, "state"),
                                self._state("offline"), qos=1, retain=True)
            self.client.disconnect()
            # Let the DISCONNECT reach the socket.
            self.client.loop_write()
        self.connected = False
        self._reactor.detach(self.client)
