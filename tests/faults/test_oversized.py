"""Oversized payloads: the broker's message_size_limit (256 KiB, the wire contract's
MAX_PAYLOAD_BYTES) refuses them from a device, the largest allowed one still passes, and
the ingest refuses an oversized payload itself too (counted, stored as a reject)."""

import threading
import time
from pathlib import Path
from typing import Dict, List, Optional

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import select

from fleet_api.db import devices, make_engine, migrate, rejects, utcnow
from fleet_api.ingest.consumer import Ingest, Message
from fleet_api.ingest.store import write_batch
from simpul_wire.models import MAX_PAYLOAD_BYTES, Record, TelemetryBatch, encode
from testbed.harness import Broker, Fleet, device, telemetry, wait_until
from tests.faults.helpers import (
    assert_exactly_once,
    collectors,
    make_box,
    prefill,
    publish,
    read_outbox,
)

EPOCH = "00112233445566aa"


def batch_of(device_id: str, size: int, seq: int) -> bytes:
    """A valid telemetry batch padded with JSON whitespace to exactly `size` bytes."""
    body = encode(TelemetryBatch(device_id=device_id, epoch=EPOCH, records=[
        Record(seq=seq, ts=utcnow().isoformat() + "+00:00", metrics={"pm2_5": 1.0})]))
    assert len(body) <= size
    return body + b" " * (size - len(body))


class DeviceClient:
    def __init__(self, port: int, user: str, password: str) -> None:
        self.acks: Dict[int, int] = {}
        self.done = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=user,
                                  protocol=mqtt.MQTTv5)
        self.client.username_pw_set(user, password)
        self.client.on_publish = self._published
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _published(self, _c: mqtt.Client, _u: object, mid: int, reason: object,
                   _p: object) -> None:
        self.acks[mid] = int(getattr(reason, "value", 0))

    def publish(self, name: str, payload: bytes) -> Optional[int]:
        """QoS 1; the PUBACK reason code, or None if the broker closed the connection."""
        info = self.client.publish(name, payload, qos=1)
        try:
            wait_until(lambda: info.mid in self.acks or not self.client.is_connected(), 10,
                       what="PUBACK")
        except AssertionError:
            return None
        return self.acks.get(info.mid)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.mark.slow
def test_broker_refuses_oversized(broker: Broker, fleet: Fleet) -> None:
    reg = fleet.register("big-payload")
    client = DeviceClient(broker.port, "big-payload", reg["mqtt"]["password"])
    name = "simpul/v1/big-payload/telemetry"
    try:
        wait_until(client.client.is_connected, 10, what="connected")
        # The largest payload the contract allows passes broker and ingest.
        assert client.publish(name, batch_of("big-payload", MAX_PAYLOAD_BYTES, 0)) == 0
        wait_until(lambda: len(telemetry(fleet, "big-payload")) == 1, 20,
                   what="the 256 KiB batch stored")
        # One byte more: refused by the broker, never reaching the fleet.
        code = client.publish(name, batch_of("big-payload", MAX_PAYLOAD_BYTES + 1, 1))
        # Mosquitto 2.0 answers by closing the connection (None), not with a PUBACK.
        assert code is None or code >= 0x80, code
    finally:
        client.close()
    again = DeviceClient(broker.port, "big-payload", reg["mqtt"]["password"])
    try:
        wait_until(again.client.is_connected, 10, what="reconnected")
        assert again.publish(name, batch_of("big-payload", 1000, 2)) == 0
        wait_until(lambda: len(telemetry(fleet, "big-payload")) == 2, 20, what="seq 2 stored")
    finally:
        again.close()
    assert sorted(r["seq"] for r in telemetry(fleet, "big-payload")) == [0, 2]
    assert device(fleet, "big-payload")["rejected_count"] == 0  # the ingest never saw it


def test_ingest_refuses_oversized(tmp_path: Path) -> None:
    """Behind a broker configured with a larger limit, the ingest still refuses it."""
    engine = make_engine(f"sqlite:///{tmp_path / 'fleet.db'}")
    migrate(engine)
    with engine.begin() as conn:
        conn.execute(devices.insert().values(
            device_id="big-payload", site="s", kind="sensor", district="d", lat=0.0, lon=0.0,
            tags=[], password_hash="x", created_at=utcnow()))
    ingest = Ingest(engine, "127.0.0.1", 1, "simpul-fleet", "unused")
    name = "simpul/v1/big-payload/telemetry"
    messages: List[Message] = [
        Message(name, batch_of("big-payload", MAX_PAYLOAD_BYTES + 1, 0), 1, 1, False),
        Message(name, batch_of("big-payload", MAX_PAYLOAD_BYTES, 1), 2, 1, False),
    ]
    now = utcnow()
    batch = ingest.build(messages, now)
    assert [r["seq"] for r in batch.rows] == [1]
    assert len(batch.rejected) == 1 and "over the limit" in batch.rejected[0]["reason"]
    with engine.begin() as conn:
        write_batch(conn, batch, now)
    with engine.connect() as conn:
        row = conn.execute(select(devices.c.rejected_count)).one()
        stored = conn.execute(select(rejects.c.reason, rejects.c.device_id)).all()
    assert row[0] == 1
    assert len(stored) == 1 and stored[0][1] == "big-payload"


@pytest.mark.slow
def test_agent_never_sends_an_oversized_batch(scratch: Path, broker: Broker,
                                              fleet: Fleet) -> None:
    """Records of ~50 KB with the default batch of 200 would make a 10 MB batch, which
    the broker answers by closing the connection, again after every reconnect. The box
    sends smaller batches instead, and a record over the limit on its own becomes a
    counted gap (`oversized`)."""
    fat = make_box(scratch, fleet, "fat-records", publish(sample_s=0.5, health_s=2),
                   collectors("fat", {f"metric_{i:05d}": i + 0.5 for i in range(4000)}))
    huge = make_box(scratch, fleet, "huge-record", publish(sample_s=0.5, health_s=2),
                    collectors("huge", {f"metric_{i:05d}": i + 0.5 for i in range(25000)}))
    fat_metrics = {f"metric_{i:05d}": i + 0.5 for i in range(4000)}
    prefill(fat, 30, metrics=fat_metrics)  # a backlog: the first batch would be 1.4 MB
    try:
        fat.start()
        huge.start()
        wait_until(lambda: len(telemetry(fleet, "fat-records")) >= 40, 60,
                   what="fat records stored")
        wait_until(lambda: sum(1 for r in telemetry(fleet, "huge-record")
                               if r["gap_to"] is not None) >= 1, 60, what="oversized gap")
        time.sleep(1)
    finally:
        fat.stop()
        huge.stop()
    rows = assert_exactly_once(fleet, fat)["telemetry"]
    assert all(len(r["metrics"]) == 4001 for r in rows)
    assert sorted(r["seq"] for r in rows if "n" in r["metrics"]) == list(range(30))
    assert fat.logs().count("agent fat-records running") == 1
    rows = assert_exactly_once(fleet, huge, gaps_allowed=True)["telemetry"]
    assert all(r["gap_to"] is not None for r in rows)
    state = read_outbox(huge.outbox)
    in_gaps = sum(r["gap_to"] - r["seq"] + 1 for r in rows)
    assert in_gaps == state.counters["oversized"] == state.counters["dropped"] > 0
    assert "over the 262144-byte limit: sent as a gap" in huge.logs()
    # Neither box was ever thrown off the broker.
    assert "Traceback" not in fat.logs() + huge.logs()
    assert broker.process.output().count("Client fat-records disconnected") == 1  # its stop
