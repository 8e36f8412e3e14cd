"""Ingest worker: MQTT v5 shared subscription -> validated rows -> one commit -> PUBACKs.

Exactly once: a message is acknowledged to the broker only after its rows are committed
(manual ack), on a persistent session with a fixed client id, so a crash before the
commit means the broker delivers it again. The unique key (device, stream, epoch, seq)
is the second line of defence, for the redelivery after a commit whose acks were lost.

The MQTT side is paho-mqtt through fleet_api.broker.mqtt_link (read a batch, commit, then ack);
see docs/benchmarks/fleet.md for where the time goes.

No message of any content stalls the ingest: one that does not fit the contract is a
reject (acknowledged, with its reason); one that fits but that the store still refuses
for a reason inside it is found by bisecting the group commit, rejected, and the rest
of its batch stored. Only a failure of the store itself holds acknowledgements back.
"""

import logging
import random
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, FrozenSet, List, Optional, Set, Tuple

from sqlalchemy import select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from fleet_api import metrics
from fleet_api.broker.mqtt_link import Client, Message, MqttError
from fleet_api.db import devices, utcnow, workers
from fleet_api.devices.claims import answer_claim
from fleet_api.ingest.store import (
    WRITE_ERRORS,
    Batch,
    brief,
    clean_text,
    record_row,
    store_failure,
    write_batch,
)
from simpul_wire.models import (
    MAX_PAYLOAD_BYTES,
    Ack,
    Claim,
    CommandResult,
    ReportedConfig,
    StatePayload,
    TelemetryBatch,
    WireError,
    decode,
    encode,
    seq_ranges,
)
from simpul_wire.topics import TopicError, fleet_name, parse_topic, topic

log = logging.getLogger("simpul.ingest")

SHARE_GROUP = "simpul-ingest"
LEAVES = ("telemetry", "health", "state", "config/reported", "cmd/+/result", "claim")
BEAT_S = 5.0
KNOWN_TTL_S = 10.0  # a deregistered device's records may still land for this long
SESSION_EXPIRY_S = 7 * 24 * 3600


def subscriptions() -> List[Tuple[str, int]]:
    return [(f"$share/{SHARE_GROUP}/simpul/v1/+/{leaf}", 1) for leaf in LEAVES]


class Ingest:
    def __init__(self, engine: Engine, host: str, port: int, username: str, password: str,
                 client_id: str = fleet_name("ingest_1"), batch_max: int = 2000,
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
        self._known: Dict[str, float] = {}  # device id -> when the database confirmed it
        self.client = Client(client_id, username, password)

    # -- connection -------------------------------------------------------------------
    def _connect(self) -> bool:
        try:
            self.client.connect(self._host, self._port, keepalive=30, clean_start=False,
                                session_expiry=SESSION_EXPIRY_S, receive_max=65535)
            self.client.subscribe(subscriptions())
        except (OSError, MqttError) as exc:
            log.warning("ingest cannot reach the broker at %s:%s: %s", self._host,
                        self._port, exc)
            self.client.close()
            return False
        self.connected = True
        self._attempt = 0
        # Whatever the boxes did while we could not hear them is unknown until each
        # speaks again; a retained `online` from before proves nothing.
        self._mark_unknown()
        self._beat(force=True)
        log.info("ingest %s connected to %s:%s", self.client_id, self._host, self._port)
        return True

    def _lost(self, reason: object) -> None:
        self.client.close()
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
    def _take(self, messages: List[Message]) -> None:
        if messages and not self._buffer:
            self._first_at = time.monotonic()
        self._buffer.extend(messages)

    def _due(self) -> bool:
        """Group commit: a batch goes when it is full, when it is flush_s old, or once
        nothing more is waiting (after a fifth of flush_s, so a trickle shares commits):
        a backlog drains in full batches and a quiet stream is not held back."""
        if not self._buffer:
            return False
        age = time.monotonic() - self._first_at
        return (len(self._buffer) >= self.batch_max or age >= self.flush_s
                or (age >= self.flush_s / 5 and self.client.idle()))

    def flush(self) -> bool:
        """Commit the buffer, then acknowledge it. False when the store itself failed:
        what was not committed stays unacknowledged, and is retried."""
        messages = self._buffer
        done: List[Tuple[List[Message], Batch]] = []
        try:
            self._commit(messages, utcnow(), done, claims=True)
        except WRITE_ERRORS as exc:  # only the store's own failures come this far
            left = len(messages) - sum(len(part) for part, _ in done)
            log.error("database write failed, %d messages stay unacknowledged: %s",
                      left, exc)
            metrics.INGEST_DB_ERRORS.inc()
            committed = {id(m) for part, _ in done for m in part}
            self._buffer = [m for m in messages if id(m) not in committed]
            self._acknowledge(done)
            return False
        self._buffer = []
        self._acknowledge(done)
        return True

    def _commit(self, messages: List[Message], now: Any,
                done: List[Tuple[List[Message], Batch]], claims: bool) -> None:
        """Build and commit `messages` in one transaction; when the store refuses it for
        a reason inside the data, commit each half on its own, down to the one message
        at fault, which becomes a reject. Appends what was committed to `done`; raises
        on a failure of the store itself."""
        batch = self.build(messages, now, claims)
        try:
            self._write(batch, now)
        except WRITE_ERRORS as exc:
            if store_failure(exc):
                raise
            if len(messages) > 1:
                log.warning("the store refused a batch of %d messages (%s); committing "
                            "its halves apart", len(messages), brief(exc))
                half = len(messages) // 2
                self._commit(messages[:half], now, done, claims=False)
                self._commit(messages[half:], now, done, claims=False)
                return
            batch = self._refused(messages[0], batch, f"cannot be stored: {brief(exc)}")
            try:
                self._write(batch, now)
            except WRITE_ERRORS as again:  # a reject's text is cleaned: should never be
                if store_failure(again):
                    raise
                log.error("the reject of a message on %s cannot be stored either (%s); it "
                          "is dropped, not retried forever", batch.rejected[0]["topic"], again)
                batch = Batch()
        done.append((messages, batch))

    def _write(self, batch: Batch, now: Any) -> None:
        with self.engine.begin() as conn:
            known = self._known_devices(conn, batch.seen)
            self._drop_unknown(batch, known)
            batch.stored = write_batch(conn, batch, now)

    def _refused(self, message: Message, built: Batch, reason: str) -> Batch:
        """The reject of one message the store refused, telling its box about its records
        (`built` went through _drop_unknown in the failed write: its acks are of
        registered devices only)."""
        device_id = self._device_of(message.topic)
        refused = Batch(rejected=[self._reject_row(device_id, message.topic, reason)])
        refused.refusals = [(d, stream, epoch, seqs, refused.rejected[0]["reason"])
                            for d, stream, epoch, seqs in built.acks]
        return refused

    def _acknowledge(self, done: List[Tuple[List[Message], Batch]]) -> None:
        if not done:
            return
        stored = sum(batch.stored for _, batch in done)
        self.stored += stored
        metrics.RECORDS_STORED.inc(stored)
        metrics.MESSAGES_INGESTED.inc(sum(len(part) for part, _ in done))
        try:  # the PUBACKs and confirmations of the batch leave in one write
            with self.client.corked():
                self.client.ack([m.mid for part, _ in done for m in part if m.qos > 0])
                for _, batch in done:
                    self._confirm(batch)
        except (OSError, MqttError) as exc:  # committed; a redelivery is a no-op by the key
            self._lost(exc)

    def _known_devices(self, conn: Any, ids: Any) -> Set[str]:
        """Registered devices among `ids`, asking the database only about ids not
        confirmed within KNOWN_TTL_S."""
        now = time.monotonic()
        ask = [d for d in set(ids) if now - self._known.get(d, -1e9) > KNOWN_TTL_S]
        if ask:
            for i in range(0, len(ask), 500):
                found = conn.execute(select(devices.c.device_id)
                                     .where(devices.c.device_id.in_(ask[i:i + 500])))
                for row in found:
                    self._known[row[0]] = now
        return {d for d in ids if now - self._known.get(d, -1e9) <= KNOWN_TTL_S}

    def _confirm(self, batch: Batch) -> None:
        """Tell each box what is stored, so its outbox may forget it. QoS 0: a lost
        confirmation only means the box sends those records again."""
        merged: Dict[Tuple[str, str, str], List[int]] = {}
        for device_id, stream, epoch, seqs in batch.acks:
            merged.setdefault((device_id, stream, epoch), []).extend(seqs)
        for (device_id, stream, epoch), seqs in merged.items():
            ranges = seq_ranges(seqs)
            for i in range(0, len(ranges), 2000):  # the contract's limit per Ack
                ack = Ack(device_id=device_id, stream=stream, epoch=epoch,
                          ranges=ranges[i:i + 2000])
                self.client.publish0(topic(device_id, "ack"), encode(ack))
        for device_id, stream, epoch, seqs, reason in batch.refusals:
            ranges = seq_ranges(seqs)
            for i in range(0, len(ranges), 2000):
                ack = Ack(device_id=device_id, stream=stream, epoch=epoch,
                          ranges=ranges[i:i + 2000], rejected=reason)
                self.client.publish0(topic(device_id, "ack"), encode(ack))

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
        batch.births = [b for b in batch.births if b[0] in known]
        batch.ntp = {d: s for d, s in batch.ntp.items() if d in known}

    def _reject_row(self, device_id: Optional[str], topic: str, reason: str) -> dict:  # type: ignore[type-arg]
        metrics.PAYLOADS_REJECTED.inc()
        topic, reason = clean_text(topic, 300), clean_text(reason, 500)
        log.warning("rejected payload on %s: %s", topic, reason)
        return {"device_id": device_id, "topic": topic, "reason": reason,
                "received_at": utcnow()}

    @staticmethod
    def _device_of(name: str) -> Optional[str]:
        try:
            return parse_topic(name)[0]
        except TopicError:
            return None

    def build(self, messages: List[Message], now: Any, claims: bool = True) -> Batch:
        """The batch's rows; each message that does not fit the contract is a reject.
        `claims`: answer claims (not again when a refused batch is rebuilt in parts)."""
        batch = Batch()
        for message in messages:
            try:
                self._add(batch, message, now, claims)
                continue
            except (TopicError, WireError) as exc:
                reason = str(exc)
            except (SQLAlchemyError, OSError, MqttError):
                raise  # a claim's answer met the store's or the broker's failure: retried
            except Exception as exc:  # no payload may stall the ingest, even through a bug
                log.exception("cannot read a payload on %s", clean_text(message.topic, 300))
                reason = f"payload cannot be read: {type(exc).__name__}"
            batch.rejected.append(self._reject_row(self._device_of(message.topic),
                                                   message.topic, reason))
        return batch

    def _add(self, batch: Batch, message: Message, now: Any, claims: bool = True) -> None:
        device_id, leaf, command_id = parse_topic(message.topic)
        if len(message.payload) > MAX_PAYLOAD_BYTES:
            raise WireError(f"payload of {len(message.payload)} bytes is over the limit")
        handler = HANDLERS.get(leaf)
        if handler is None:
            return  # IGNORED, or a leaf the boxes do not write
        payload = decode(handler.model, message.payload)
        if handler.check is not None:
            handler.check(leaf, command_id, payload)
        if payload.device_id != device_id:
            raise WireError(f"device_id {payload.device_id!r} differs from the topic's "
                            f"{device_id!r}", "device_id")
        handler.take(self, batch, Arrival(device_id, payload, message, now, claims))

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
        self._connect()

    def run(self) -> None:
        while not self._stop.is_set():
            if not self.connected:
                self._reconnect()
                continue
            try:
                self._take(self.client.read(self.flush_s,
                                            max(1, self.batch_max - len(self._buffer))))
            except (OSError, MqttError) as exc:
                self._lost(exc)
                continue
            try:
                if self._due() and not self.flush():
                    self._stop.wait(1.0)
            except Exception as exc:  # a bug in one batch must not kill the worker
                log.exception("ingest flush failed; %d messages stay unacknowledged and "
                              "come again after a reconnect", len(self._buffer))
                metrics.INGEST_DB_ERRORS.inc()
                self._lost(exc)
                self._stop.wait(1.0)
            self._beat()
        if self._buffer and self.connected:
            self.flush()
        self.client.disconnect()
        self.connected = False
        self._beat(force=True)


# -- the leaves a box writes (simpul_wire.topics.LEAF_RULES), each with its handler ----
@dataclass
class Arrival:
    """One decoded message whose device id matches its topic's."""

    device_id: str
    payload: Any
    message: Message
    now: Any
    claims: bool  # answer claims (not again when a refused batch is rebuilt in parts)


@dataclass(frozen=True)
class LeafHandler:
    model: Any  # the contract's payload model
    # leaf, command id -> raises WireError when the payload does not fit its topic
    check: Optional[Callable[[str, Optional[str], Any], None]]
    take: Callable[["Ingest", Batch, Arrival], None]  # into the batch


def _check_records(leaf: str, _command_id: Optional[str], payload: Any) -> None:
    if payload.stream == "health" and leaf != "health":
        raise WireError("health records belong on the health topic", "stream")
    if leaf == "health" and payload.stream != "health":
        raise WireError("the health topic carries the health stream", "stream")


def _check_result(_leaf: str, command_id: Optional[str], payload: Any) -> None:
    if payload.command_id != command_id:
        raise WireError(f"command_id {payload.command_id!r} differs from the "
                        f"topic's {command_id!r}", "command_id")


def _take_records(_ingest: "Ingest", batch: Batch, a: Arrival) -> None:
    p = a.payload
    batch.rows.extend(record_row(a.device_id, p.stream, p.epoch, record, a.now)
                      for record in p.records)
    if p.ntp_synced is not None:
        batch.ntp[a.device_id] = p.ntp_synced
    batch.acks.append((a.device_id, p.stream, p.epoch, [r.seq for r in p.records]))
    batch.seen[a.device_id] = "online"


def _take_state(_ingest: "Ingest", batch: Batch, a: Arrival) -> None:
    if a.payload.state == "offline":
        batch.seen[a.device_id] = "offline"
    elif not a.message.retain:
        batch.seen[a.device_id] = "online"
        if a.payload.boot_id:
            batch.births.append((a.device_id, a.payload.boot_id, a.payload.agent_version))


def _take_reported(_ingest: "Ingest", batch: Batch, a: Arrival) -> None:
    batch.reported[a.device_id] = a.payload.model_dump(mode="json")
    batch.seen.setdefault(a.device_id, "online")


def _take_result(_ingest: "Ingest", batch: Batch, a: Arrival) -> None:
    p = a.payload
    batch.results.append((a.device_id, p.command_id, p.status, dict(p.result), p.error,
                          p.ts))
    batch.seen.setdefault(a.device_id, "online")


def _take_claim(ingest: "Ingest", _batch: Batch, a: Arrival) -> None:
    if a.claims:
        answer_claim(ingest.engine, ingest.client, a.payload)


HANDLERS: Dict[str, LeafHandler] = {
    "telemetry": LeafHandler(TelemetryBatch, _check_records, _take_records),
    "health": LeafHandler(TelemetryBatch, _check_records, _take_records),
    "state": LeafHandler(StatePayload, None, _take_state),
    "config/reported": LeafHandler(ReportedConfig, None, _take_reported),
    "cmd/result": LeafHandler(CommandResult, _check_result, _take_result),
    "claim": LeafHandler(Claim, None, _take_claim),
}
# Leaves a box writes that the ingest deliberately does not read (none today); a test
# holds HANDLERS | IGNORED equal to the box-written leaves of LEAF_RULES.
IGNORED: FrozenSet[str] = frozenset()
