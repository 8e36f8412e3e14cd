"""The outbox to the link: paced, encoded in batches under the payload limit, confirmed.

Pacing is a token bucket of `publish.replay_records_per_s` records a second, so a city's
boxes coming back at once after an outage do not flood the broker and the ingest. Its
clock is injectable (`clock`, monotonic seconds), so a test can step time instead of
racing the wall clock. A record leaves the outbox only when the fleet's ack says it is
stored; the router hands the sender every ack that is not the claim's.
"""

import logging
import time
from typing import Callable, Dict, List, Optional

from agent.link import Link
from agent.outbox import Outbox, StoredRecord
from agent.reactor import Reactor, Timer
from agent.timesync import ntp_synced
from simpul_wire.config import PublishSection
from simpul_wire.models import MAX_PAYLOAD_BYTES, Ack, TelemetryBatch
from simpul_wire.topics import topic

log = logging.getLogger("simpul.box")

REFUSED_HOLD_S = 30.0
RESUME_S = 0.1


def _with_seq(record: StoredRecord) -> str:
    """The stored body (a JSON object) with `seq` put first."""
    rest = record.text[1:]  # after the opening brace
    return '{"seq":' + str(record.seq) + ("" if rest == "}" else ",") + rest


class Sender:
    def __init__(self, device_id: str, publish: PublishSection, outbox: Outbox, link: Link,
                 reactor: Reactor, clock: Callable[[], float] = time.monotonic) -> None:
        self.device_id = device_id
        self.publish = publish
        self.outbox = outbox
        self.link = link
        self.reactor = reactor
        self.clock = clock
        self.publish_refused = 0
        # First record id of each batch waiting for its PUBACK -> the batch's record ids.
        self.in_flight: Dict[int, List[int]] = {}
        self._hold_until = 0.0
        self._tokens = float(publish.replay_records_per_s)
        self._refilled = clock()
        self._paced: Optional[Timer] = None
        self._resender: Optional[Timer] = None

    # -- life -------------------------------------------------------------------------
    def start(self, resend_after_s: float) -> None:
        # Sending is not only driven by new samples: records waiting for the fleet's
        # confirmation must be resent on time even when nothing new is sampled.
        self._resender = self.reactor.call_every(max(1.0, resend_after_s / 2), self.pump)

    def stop(self) -> None:
        if self._resender is not None:
            self._resender.cancel()
            self._resender = None

    # -- the link ---------------------------------------------------------------------
    def online(self) -> None:
        """The link came up: what the fleet never confirmed is due again at once."""
        self.outbox.resend_unconfirmed()
        self.pump()

    def on_ack(self, ack: Ack) -> None:
        removed = self.outbox.confirm(ack.stream, ack.epoch, ack.ranges)
        if ack.rejected:
            # Sending it again cannot help; it is gone, and counted.
            self.outbox.bump("rejected_by_fleet", removed)
            log.error("the fleet refused %d %s records: %s", removed, ack.stream, ack.rejected)
        self.pump()

    # -- sending ----------------------------------------------------------------------
    def pump(self) -> None:
        """Send pending records as batches while the link has room."""
        pub = self.publish
        if self.clock() < self._hold_until:
            return
        while self.link.connected and len(self.in_flight) < pub.max_inflight:
            allowed = self._replay_allowance()
            if allowed < 1:
                if self._paced is None:
                    self._paced = self.reactor.call_later(RESUME_S, self._resume)
                return
            busy = [i for ids in self.in_flight.values() for i in ids]
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
        rate = self.publish.replay_records_per_s
        now = self.clock()
        self._tokens = min(float(rate), self._tokens + (now - self._refilled) * rate)
        self._refilled = now
        return int(self._tokens)

    def _resume(self) -> None:
        self._paced = None
        self.pump()

    def encode(self, stream: str, batch: List[StoredRecord]) -> bytes:
        """The batch's JSON, its records spliced in as the outbox stored them.

        Decoding them into models only to encode them again made a replay of 200
        records allocate about 3 MB of small objects at once, and Python's allocator
        kept those arenas for good (the one-hour soak's RSS step at the first outage).
        What the outbox holds is a record body by construction (the sampler, gaps)."""
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
        data = self.encode(stream, batch)
        while len(data) > MAX_PAYLOAD_BYTES and len(batch) > 1:
            batch = batch[:len(batch) // 2]
            data = self.encode(stream, batch)
        if len(data) > MAX_PAYLOAD_BYTES:
            log.error("%s record %d is %d bytes, over the %d-byte limit: sent as a gap",
                      stream, batch[0].seq, len(data), MAX_PAYLOAD_BYTES)
            self.outbox.drop(batch[0].id, "oversized")
            return True
        leaf = "health" if stream == "health" else "telemetry"
        ids = [r.id for r in batch]
        key = ids[0]
        self.in_flight[key] = ids

        def acked(ok: bool) -> None:
            self.in_flight.pop(key, None)
            if ok:
                self.pump()
            else:
                # Kept in the outbox. A refusal (ACL, quota) will not clear by itself
                # at once, so hold sending for a while instead of spinning.
                self.publish_refused += 1
                self._hold_until = self.clock() + REFUSED_HOLD_S
                self.reactor.call_later(REFUSED_HOLD_S, self.pump)

        if not self.link.publish(topic(self.device_id, leaf), data, on_ack=acked):
            self.in_flight.pop(key, None)
            return False
        # Sent from now, not from the PUBACK: a gap in flight must not grow (the outbox
        # folds drops only into gaps never sent), or the fleet stores the shorter copy,
        # confirms its seq, and the folded seqs are forgotten.
        self.outbox.mark_sent(ids)
        return True
