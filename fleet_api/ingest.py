"""Ingest worker: MQTT v5 shared subscription -> validated rows -> one commit -> PUBACKs.

Exactly once: a message is acknowledged to the broker only after its rows are committed
(manual ack), on a persistent session with a fixed client id, so a crash before the
commit means the broker delivers it again. The unique key (device, stream, epoch, seq)
is the second line of defence, for the redelivery after a commit whose acks were lost.
"""

import logging
import random
import threading
import time
from dataclasses import dataclass
from typing import Any, List, Optional, Tuple

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from agent.reactor import no_delay
from fleet_api import metrics
from fleet_api.db import devices, utcnow, workers
from fleet_api.store import Batch, known_devices, record_row, write_batch
from simpul_wire.models import (
    MAX_PAYLOAD_BYTES,
    Ack,
    CommandResult,
    ReportedConfig,
    StatePayload,
    TelemetryBatch,
    WireError,
    decode,
    encode,
    seq_ranges,
)
from simpul_wire.topics import TopicError, parse_topic, topic

log = logging.getLogger("simpul.ingest")

SHARE_GROUP = "simpul-ingest"
LEAVES = ("telemetry", "health", "state", "config/reported", "cmd/+/result", "claim")
BEAT_S = 5.0


@dataclass
class Message:
    topic: str
    payload: bytes
    mid: int
    qos: int
    retain: bool


def subscriptions() -> List[Tuple[str, int]]:
    return [(f"$share/{SHARE_GROUP}/simpul/v1/+/{leaf}", 1) for leaf in LEAVES]


class Ingest:
    def __init__(self, engine: Engine, host: str, port: int, username: str, password: str,
                 client_id: str = "simpul-ingest-1", batch_max: int = 2000,
                 flush_s: float = 0.05) -> None:
        self.engine = engine
        self.client_id = client_id
        self.batch_max = batch_max
        self.flush_s = flush_s
        self.connected = False
        self.stored = 0
        self._host, self._port = host, port
        self._buffer: List[Message] = []
        self._first_at = 0.0
        self._stop = threading.Event()
        self._last_beat = 0.0
        self._attempt = 0
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=mqtt.MQTTv5, manual_ack=True)
        self.client.on_socket_open = lambda _c, _u, sock: no_delay(sock)
        self.client.username_pw_set(username, password)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message

    # -- connection -------------------------------------------------------------------
    def _on_connect(self, client: mqtt.Client, _ud: Any, _flags: Any, reason: ReasonCode,
                    _props: Any) -> None:
        if reason.is_failure:
            log.error("broker refused the ingest connection: %s", reason)
            return
        self.connected = True
        self._attempt = 0
        client.subscribe(subscriptions())
        # Whatever the boxes did while we could not hear them is unknown until each
        # speaks again; a retained `online` from before proves nothing.
        self._mark_unknown()
        self._beat(force=True)
        log.info("ingest %s connected to %s:%s", self.client_id, self._host, self._port)

    def _on_disconnect(self, _c: mqtt.Client, _ud: Any, _f: Any, reason: ReasonCode,
                       _p: Any) -> None:
        self.connected = False
        self._buffer.clear()  # unacknowledged: the broker redelivers them
        log.warning("ingest %s lost the broker: %s", self.client_id, reason)
        self._beat(force=True)

    def _mark_unknown(self) -> None:
        try:
            with self.engine.begin() as conn:
                conn.execute(update(devices).where(devices.c.state == "online")
                             .values(state="unknown"))
        except SQLAlchemyError as exc:
            log.error("cannot mark devices unknown: %s", exc)

    def _beat(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_beat < BEAT_S:
            return
        self._last_beat = now
        values = {"connected": self.connected, "beat_at": utcnow()}
        try:
            with self.engine.begin() as conn:
                done = conn.execute(update(workers).where(workers.c.name == self.client_id)
                                    .values(**values))
                if not done.rowcount:
                    conn.execute(workers.insert().values(name=self.client_id, **values))
        except SQLAlchemyError as exc:
            log.error("cannot record ingest heartbeat: %s", exc)

    # -- receiving --------------------------------------------------------------------
    def _on_message(self, _c: mqtt.Client, _ud: Any, msg: mqtt.MQTTMessage) -> None:
        if not self._buffer:
            self._first_at = time.monotonic()
        self._buffer.append(Message(msg.topic, bytes(msg.payload), msg.mid, msg.qos, msg.retain))

    def _due(self) -> bool:
        return bool(self._buffer) and (
            len(self._buffer) >= self.batch_max
            or time.monotonic() - self._first_at >= self.flush_s)

    def flush(self) -> bool:
        """Commit the buffer, then acknowledge it. False (nothing acked) on a DB error."""
        messages = self._buffer
        now = utcnow()
        batch = self.build(messages, now)
        try:
            with self.engine.begin() as conn:
                known = known_devices(conn, batch.seen)
                self._drop_unknown(batch, known)
                stored = write_batch(conn, batch, now)
        except SQLAlchemyError as exc:
            log.error("database write failed, %d messages stay unacknowledged: %s",
                      len(messages), exc)
            metrics.INGEST_DB_ERRORS.inc()
            return False
        self.stored += stored
        metrics.RECORDS_STORED.inc(stored)
        metrics.MESSAGES_INGESTED.inc(len(messages))
        for message in messages:
            if message.qos > 0:
                self.client.ack(message.mid, message.qos)
        self._confirm(batch)
        self._buffer = []
        return True

    def _confirm(self, batch: Batch) -> None:
        """Tell each box what is stored, so its outbox may forget it. QoS 0: a lost
        confirmation only means the box sends those records again."""
        for device_id, stream, epoch, seqs in batch.acks:
            ack = Ack(device_id=device_id, stream=stream, epoch=epoch, ranges=seq_ranges(seqs))
            self.client.publish(topic(device_id, "ack"), encode(ack), qos=0)

    def _drop_unknown(self, batch: Batch, known: set) -> None:  # type: ignore[type-arg]
        for device_id in list(batch.seen):
            if device_id not in known:
                batch.seen.pop(device_id)
                batch.reported.pop(device_id, None)
                batch.rejected.append(self._reject_row(None, f"simpul/v1/{device_id}",
                                                       "device is not registered"))
        batch.rows = [r for r in batch.rows if r["device_id"] in known]
        batch.results = [r for r in batch.results if r[0] in known]
        batch.acks = [a for a in batch.acks if a[0] in known]

    def _reject_row(self, device_id: Optional[str], topic: str, reason: str) -> dict:  # type: ignore[type-arg]
        metrics.PAYLOADS_REJECTED.inc()
        log.warning("rejected payload on %s: %s", topic, reason)
        return {"device_id": device_id, "topic": topic[:300], "reason": reason[:500],
                "received_at": utcnow()}

    def build(self, messages: List[Message], now: Any) -> Batch:
        batch = Batch()
        for message in messages:
            try:
                self._add(batch, message, now)
            except (TopicError, WireError) as exc:
                device_id = None
                try:
                    device_id = parse_topic(message.topic)[0]
                except TopicError:
                    pass
                batch.rejected.append(self._reject_row(device_id, message.topic, str(exc)))
        return batch

    def _add(self, batch: Batch, message: Message, now: Any) -> None:
        device_id, leaf, command_id = parse_topic(message.topic)
        if len(message.payload) > MAX_PAYLOAD_BYTES:
            raise WireError(f"payload of {len(message.payload)} bytes is over the limit")
        if leaf in ("telemetry", "health"):
            payload: Any = decode(TelemetryBatch, message.payload)
            if payload.stream == "health" and leaf != "health":
                raise WireError("health records belong on the health topic", "stream")
            if leaf == "health" and payload.stream != "health":
                raise WireError("the health topic carries the health stream", "stream")
        elif leaf == "state":
            payload = decode(StatePayload, message.payload)
        elif leaf == "config/reported":
            payload = decode(ReportedConfig, message.payload)
        elif leaf == "cmd/result":
            payload = decode(CommandResult, message.payload)
            if payload.command_id != command_id:
                raise WireError(f"command_id {payload.command_id!r} differs from the "
                                f"topic's {command_id!r}", "command_id")
        else:
            return  # claims: handled by their own service
        if payload.device_id != device_id:
            raise WireError(f"device_id {payload.device_id!r} differs from the topic's "
                            f"{device_id!r}", "device_id")
        if leaf in ("telemetry", "health"):
            for record in payload.records:
                batch.rows.append(record_row(device_id, payload.stream, payload.epoch,
                                             record, now))
            batch.acks.append((device_id, payload.stream, payload.epoch,
                               [r.seq for r in payload.records]))
            batch.seen[device_id] = "online"
        elif leaf == "state":
            if payload.state == "offline":
                batch.seen[device_id] = "offline"
            elif not message.retain:
                batch.seen[device_id] = "online"
        elif leaf == "config/reported":
            batch.reported[device_id] = payload.model_dump(mode="json")
            batch.seen.setdefault(device_id, "online")
        elif leaf == "cmd/result":
            batch.results.append((device_id, payload.command_id, payload.status,
                                  dict(payload.result), payload.error, payload.ts))
            batch.seen.setdefault(device_id, "online")

    # -- running ----------------------------------------------------------------------
    def stop(self) -> None:
        self._stop.set()

    def _reconnect(self) -> None:
        """Reconnect, waiting with backoff and jitter after a failed try (reset on CONNACK)."""
        if self._attempt:
            delay = min(30.0, 0.5 * 2 ** (self._attempt - 1)) * random.uniform(0.5, 1.0)
            self._beat()
            if self._stop.wait(delay):
                return
        self._attempt += 1
        try:
            self.client.reconnect()
        except OSError as exc:
            log.warning("ingest cannot reach the broker at %s:%s: %s", self._host, self._port, exc)

    def run(self) -> None:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 7 * 24 * 3600
        props.ReceiveMaximum = 65535
        self.client.connect_async(self._host, self._port, keepalive=30, clean_start=False,
                                  properties=props)
        while not self._stop.is_set():
            rc = self.client.loop(timeout=self.flush_s)
            if rc in (mqtt.MQTT_ERR_NO_CONN, mqtt.MQTT_ERR_CONN_LOST):
                self._reconnect()
                continue
            try:
                if self._due() and not self.flush():
                    self._stop.wait(1.0)
            except Exception:  # a bug in one batch must not kill the worker: it is redelivered
                log.exception("ingest flush failed; %d messages stay unacknowledged",
                              len(self._buffer))
                metrics.INGEST_DB_ERRORS.inc()
                self._buffer = []
                self._stop.wait(1.0)
            self._beat()
        if self._buffer:
            self.flush()
        self.client.disconnect()
        self.connected = False
        self._beat(force=True)
