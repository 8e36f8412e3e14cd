"""One box: collectors feed the outbox on a schedule, and the outbox drains through the link.

The same class runs in the daemon (one box on a reactor) and in the fleet simulator
(thousands on one reactor), so city-scale runs test the agent itself.
"""

import logging
import secrets
import time
from datetime import datetime, timezone
from typing import Callable, Dict, List, Optional, Tuple

from agent import __version__
from agent.claim import Claimer
from agent.collectors.base import Accumulator, Collector
from agent.collectors.registry import build
from agent.config import AgentConfig
from agent.errors import CollectorError, OutboxError
from agent.link import Link, LinkSettings
from agent.outbox import Outbox, StoredRecord
from agent.reactor import Reactor, Timer
from agent.timesync import ClockJumps, ntp_synced
from simpul_wire.models import (
    MAX_PAYLOAD_BYTES,
    Ack,
    TelemetryBatch,
    WireError,
    decode,
)
from simpul_wire.topics import subscription, topic

log = logging.getLogger("simpul.box")

WallClock = Callable[[], float]
REFUSED_HOLD_S = 30.0


def _with_seq(record: StoredRecord) -> str:
    """The stored body (a JSON object) with `seq` put first."""
    rest = record.text[1:]  # after the opening brace
    return '{"seq":' + str(record.seq) + ("" if rest == "}" else ",") + rest


def start_collectors(collectors: List[Collector]) -> None:
    for collector in collectors:
        try:
            collector.start()
        except CollectorError as exc:
            # It reports `unavailable` at each gather until its source comes back.
            log.warning("collector %s did not start: %s", collector.name, exc)


def close_collectors(collectors: List[Collector]) -> None:
    for collector in collectors:
        try:
            collector.close()
        except Exception:  # closing must never stop the agent; logged
            log.exception("collector %s did not close cleanly", collector.name)


class Box:
    def __init__(self, config: AgentConfig, reactor: Reactor, password: Optional[str],
                 outbox: Optional[Outbox] = None, clock: WallClock = time.time,
                 collectors: Optional[List[Collector]] = None) -> None:
        self.config = config
        self.device_id = config.device.device_id
        self.reactor = reactor
        self.clock = clock
        self.outbox = outbox or Outbox(
            f"{config.device.data_dir}/outbox.sqlite",
            max_bytes=config.outbox.max_bytes, max_age_s=config.outbox.max_age_s, clock=clock,
            resend_after_s=config.outbox.resend_after_s,
        )
        self.collectors = collectors if collectors is not None else [
            build(c) for c in config.collectors
        ]
        self.clock_jumps = ClockJumps(clock, reactor.monotonic)
        self._clock_era_id = self.outbox.last_id()
        self.collector_errors: Dict[str, int] = {}
        self.publish_refused = 0
        self._in_flight: Dict[int, List[int]] = {}
        self._timers: List[Timer] = []
        self._hold_until = 0.0
        self._resender: Optional[Timer] = None
        self._tokens = float(config.publish.replay_records_per_s)
        self._refilled = reactor.monotonic()
        self._paced: Optional[Timer] = None
        host, port = config.broker.host_port()
        settings = LinkSettings(
            device_id=self.device_id, host=host, port=port,
            username=config.broker.username or self.device_id, password=password,
            keepalive_s=config.broker.keepalive_s, ca_file=config.broker.ca_file,
            cert_file=config.broker.cert_file, key_file=config.broker.key_file,
            tls=config.broker.url.startswith("mqtts://"),
            agent_version=__version__, boot_id=secrets.token_hex(8),
        )
        self.link = Link(reactor, settings, on_message=self._on_message,
                         on_online=self._on_online,
                         subscriptions=(subscription("config/desired", self.device_id),
                                        subscription("cmd", self.device_id),
                                        subscription("ack", self.device_id)))
        self.message_handlers: List[Callable[[str, bytes], None]] = []
        self.online_hooks: List[Callable[[], None]] = []
        self._ack_topic = topic(self.device_id, "ack")
        # Acks of streams kept outside the outbox (the claim), by stream.
        self.ack_handlers: Dict[str, Callable[[Ack], None]] = {}
        self.claim = Claimer.attach(self)

    # -- life -------------------------------------------------------------------------
    def start(self) -> None:
        start_collectors(self.collectors)
        self.start_schedule()
        # Sending is not only driven by new samples: records waiting for the fleet's
        # confirmation must be resent on time even when nothing new is sampled.
        self._resender = self.reactor.call_every(
            max(1.0, self.config.outbox.resend_after_s / 2), self.pump)
        if self.claim:
            self.claim.start()
        self.link.start()

    def start_schedule(self) -> None:
        pub = self.config.publish
        self._timers.append(self.reactor.call_every(pub.sample_interval_s, self.sample_telemetry,
                                                    first=0.0))
        # The first health sample waits a little, so it can say whether the link came up.
        self._timers.append(self.reactor.call_every(pub.health_interval_s, self.sample_health,
                                                    first=min(pub.health_interval_s, 3.0)))

    def stop_schedule(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()

    def swap(self, config: AgentConfig, collectors: List[Collector]) -> Tuple[AgentConfig,
                                                                               List[Collector]]:
        """Run a new managed config and collector set; return the old ones (for rollback).
        The outbox, its counters and the link carry on untouched."""
        old = (self.config, self.collectors)
        self.stop_schedule()
        self.config = config
        self.collectors = collectors
        self.outbox.max_bytes = config.outbox.max_bytes
        self.outbox.max_age_s = config.outbox.max_age_s
        self.outbox.resend_after_s = config.outbox.resend_after_s
        self.start_schedule()
        return old

    def stop(self) -> None:
        if self._resender is not None:
            self._resender.cancel()
            self._resender = None
        self.stop_schedule()
        if self.claim:
            self.claim.stop()
        self.link.stop()
        close_collectors(self.collectors)

    # -- sampling ---------------------------------------------------------------------
    def _gather(self, stream: str) -> Optional[Accumulator]:
        group = [c for c in self.collectors if c.stream == stream]
        if not group:
            return None
        acc = Accumulator()
        for collector in group:
            try:
                collector.gather(acc)
            except CollectorError as exc:
                acc.status(collector.name, "unavailable", str(exc))
            except Exception as exc:  # a collector bug becomes a health figure, never a crash
                self.collector_errors[collector.name] = (
                    self.collector_errors.get(collector.name, 0) + 1)
                acc.status(collector.name, "unavailable", f"collector error: {exc!r}")
                log.exception("collector %s failed", collector.name)
        return acc

    def _timestamp(self) -> str:
        return datetime.fromtimestamp(self.clock(), tz=timezone.utc).isoformat()

    def _store(self, stream: str, acc: Accumulator) -> None:
        body: Dict[str, object] = {
            "ts": self._timestamp(),
            "metrics": acc.metrics,
            "sources": {k: v.model_dump(exclude_none=True) for k, v in acc.sources.items()},
        }
        step = self.clock_jumps.check()
        if step:  # NTP stepped the clock: records since the last step move with it
            moved = self.outbox.shift_times(step, self._clock_era_id)
            log.warning("wall clock stepped %+.0f s; %d stored records moved", step, moved)
            self._clock_era_id = self.outbox.last_id()
        try:
            self.outbox.append(stream, body)
        except OutboxError as exc:
            log.error("%s", exc)
        self.pump()

    def sample_telemetry(self) -> None:
        acc = self._gather("telemetry")
        if acc is not None:
            self._store("telemetry", acc)

    def sample_health(self) -> None:
        acc = self._gather("health") or Accumulator()
        self._gather_collector_health(acc)
        self.add_agent_figures(acc)
        self._store("health", acc)

    def _gather_collector_health(self, acc: Accumulator) -> None:
        """Figures about collectors themselves (serial port counters, source status)
        from any collector offering `gather_health(acc)`, whatever its stream."""
        for collector in self.collectors:
            hook = getattr(collector, "gather_health", None)
            if hook is None:
                continue
            try:
                hook(acc)
            except Exception as exc:  # a collector bug becomes a health figure, never a crash
                self.collector_errors[collector.name] = (
                    self.collector_errors.get(collector.name, 0) + 1)
                acc.status(collector.name, "unavailable", f"collector error: {exc!r}")
                log.exception("collector %s health failed", collector.name)

    def add_agent_figures(self, acc: Accumulator) -> None:
        """The agent's own figures: how long can this box stay offline?"""
        acc.add("outbox_depth", self.outbox.depth())
        acc.add("outbox_bytes", self.outbox.bytes)
        oldest = self.outbox.oldest_age_s()
        acc.add("outbox_oldest_age_s", oldest or 0.0)
        acc.add("outbox_unconfirmed", self.outbox.unconfirmed())
        acc.add("outbox_dropped", self.outbox.counter("dropped"))
        acc.add("outbox_rejected_by_fleet", self.outbox.counter("rejected_by_fleet"))
        acc.add("outbox_write_errors", self.outbox.counter("write_errors"))
        acc.add("outbox_oversized", self.outbox.counter("oversized"))
        acc.add("link_reconnects", self.link.reconnects)
        acc.add("publish_refused", self.publish_refused)
        acc.add("collector_errors", sum(self.collector_errors.values()))
        acc.status("uplink", "ok" if self.link.connected else "unavailable",
                   None if self.link.connected else "broker not connected")

    # -- sending ----------------------------------------------------------------------
    def _on_online(self, online: bool) -> None:
        if online:
            self.outbox.resend_unconfirmed()
            self.pump()
            for hook in self.online_hooks:
                hook()

    def pump(self) -> None:
        """Send pending records as batches while the link has room."""
        pub = self.config.publish
        if self.reactor.monotonic() < self._hold_until:
            return
        while self.link.connected and len(self._in_flight) < pub.max_inflight:
            allowed = self._replay_allowance()
            if allowed < 1:
                # Replay after an outage is paced, so a city's boxes coming back at once
                # do not flood the broker and the ingest.
                if self._paced is None:
                    self._paced = self.reactor.call_later(0.1, self._resume)
                return
            busy = [i for ids in self._in_flight.values() for i in ids]
            records = self.outbox.pending(min(pub.batch_max_records, allowed), exclude=busy)
            if not records:
                return
            stream = records[0].stream
            batch = [r for r in records if r.stream == stream]
            if not self._send(stream, batch):
                return
            self._tokens -= len(batch)

    def _replay_allowance(self) -> int:
        """Token bucket of records per second (publish.replay_records_per_s)."""
        rate = self.config.publish.replay_records_per_s
        now = self.reactor.monotonic()
        self._tokens = min(float(rate), self._tokens + (now - self._refilled) * rate)
        self._refilled = now
        return int(self._tokens)

    def _resume(self) -> None:
        self._paced = None
        self.pump()

    def _encode(self, stream: str, batch: List[StoredRecord]) -> bytes:
        """The batch's JSON, its records spliced in as the outbox stored them.

        Decoding them into models only to encode them again made a replay of 200
        records allocate about 3 MB of small objects at once, and Python's allocator
        kept those arenas for good (the one-hour soak's RSS step at the first outage).
        What the outbox holds is a record body by construction (`_store`, gaps)."""
        # Built without validation (it has no records yet); its fields are ours.
        envelope = TelemetryBatch.model_construct(
            device_id=self.device_id, stream=stream, epoch=self.outbox.epoch,
            ntp_synced=ntp_synced(self.reactor.monotonic))
        head = envelope.model_dump_json(exclude_none=True, exclude={"records"})
        records = ",".join(_with_seq(r) for r in batch)
        return f'{head[:-1]},"records":[{records}]}}'.encode()

    def _send(self, stream: str, batch: List[StoredRecord]) -> bool:
        # The broker closes the connection of a client whose message is over its
        # message_size_limit, so an oversized batch would be resent after every
        # reconnect, forever: send fewer records, and a record too big on its own
        # goes as a counted gap.
        data = self._encode(stream, batch)
        while len(data) > MAX_PAYLOAD_BYTES and len(batch) > 1:
            batch = batch[:len(batch) // 2]
            data = self._encode(stream, batch)
        if len(data) > MAX_PAYLOAD_BYTES:
            log.error("%s record %d is %d bytes, over the %d-byte limit: sent as a gap",
                      stream, batch[0].seq, len(data), MAX_PAYLOAD_BYTES)
            self.outbox.drop(batch[0].id, "oversized")
            return True
        leaf = "health" if stream == "health" else "telemetry"
        ids = [r.id for r in batch]
        key = ids[0]
        self._in_flight[key] = ids

        def acked(ok: bool) -> None:
            self._in_flight.pop(key, None)
            if ok:
                self.pump()
            else:
                # Kept in the outbox. A refusal (ACL, quota) will not clear by itself
                # at once, so hold sending for a while instead of spinning.
                self.publish_refused += 1
                self._hold_until = self.reactor.monotonic() + REFUSED_HOLD_S
                self.reactor.call_later(REFUSED_HOLD_S, self.pump)

        if not self.link.publish(topic(self.device_id, leaf), data, on_ack=acked):
            self._in_flight.pop(key, None)
            return False
        # Sent from now, not from the PUBACK: a gap in flight must not grow (the outbox
        # folds drops only into gaps never sent), or the fleet stores the shorter copy,
        # confirms its seq, and the folded seqs are forgotten.
        self.outbox.mark_sent(ids)
        return True

    # -- control messages -------------------------------------------------------------
    def _on_message(self, name: str, payload: bytes) -> None:
        if name == self._ack_topic:
            self._on_ack(payload)
            return
        for handler in self.message_handlers:
            handler(name, payload)

    def _on_ack(self, payload: bytes) -> None:
        try:
            ack = decode(Ack, payload)
        except WireError as exc:
            log.warning("ignoring a malformed ack: %s", exc)
            return
        if ack.stream in self.ack_handlers:
            self.ack_handlers[ack.stream](ack)
            return
        removed = self.outbox.confirm(ack.stream, ack.epoch, ack.ranges)
        if ack.rejected:
            # Sending it again cannot help; it is gone, and counted.
            self.outbox.bump("rejected_by_fleet", removed)
            log.error("the fleet refused %d %s records: %s", removed, ack.stream, ack.rejected)
        self.pump()
