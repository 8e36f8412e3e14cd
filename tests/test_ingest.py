"""Ingest against a real broker and fleet: bad payloads counted, duplicates stored once."""

import json

import pytest

from simpul_wire import Record, TelemetryBatch, encode, utcnow
from testbed.harness import Broker, Fleet, device, telemetry, wait_until
from testbed.mqtt import Client

pytestmark = pytest.mark.slow

EPOCH = "00112233445566778899aabb"


def batch(device_id: str, seqs: range, value: float = 1.0) -> bytes:
    records = [Record(seq=s, ts=utcnow(), metrics={"pm2_5": value + s}) for s in seqs]
    return encode(TelemetryBatch(device_id=device_id, epoch=EPOCH, records=records))


def test_bad_payloads_are_counted_and_ingest_goes_on(broker: Broker, fleet: Fleet) -> None:
    pw = fleet.register("box-a")["mqtt"]["password"]
    fleet.register("box-b")
    box = Client(broker.port, "box-a", pw)
    topic = "simpul/v1/box-a/telemetry"
    bad = [
        b"\x00\xffnot json",
        b"[1, 2, 3]",
        json.dumps({"schema_version": 99, "device_id": "box-a"}).encode(),
        batch("box-b", range(0, 2)),  # claims to be another device
        json.dumps({"schema_version": 1, "device_id": "box-a", "epoch": EPOCH,
                    "records": [{"seq": -1, "ts": "yesterday"}]}).encode(),
    ]
    for payload in bad:
        assert not box.publish(topic, payload).is_failure
    assert not box.publish(topic, batch("box-a", range(0, 3), 10.0)).is_failure
    records = wait_until(lambda: telemetry(fleet, "box-a"), 10, what="the good batch")
    assert [r["metrics"]["pm2_5"] for r in records] == [10.0, 11.0, 12.0]
    info = wait_until(lambda: (lambda d: d["rejected_count"] == len(bad) and d)(
        device(fleet, "box-a")), 10, what="rejects counted")
    assert info["rejected_count"] == 5
    log = fleet.process.output()
    assert "unknown schema_version 99" in log
    assert "differs from the topic" in log
    assert telemetry(fleet, "box-b") == []
    box.close()


def test_duplicate_delivery_is_stored_once_and_confirmed_each_time(
        broker: Broker, fleet: Fleet) -> None:
    pw = fleet.register("box-a")["mqtt"]["password"]
    box = Client(broker.port, "box-a", pw)
    box.subscribe("simpul/v1/box-a/ack")
    payload = batch("box-a", range(0, 50))
    for _ in range(3):
        assert not box.publish("simpul/v1/box-a/telemetry", payload).is_failure
    # A wait, not a speed test: on a loaded two-core machine the first group commit into
    # a fresh PostgreSQL database took more than 10 s once.
    acks = wait_until(lambda: [m for t, m in box.messages if t.endswith("/ack")]
                      if len(box.messages) >= 3 else None, 30, what="three acks")
    for raw in acks:
        ack = json.loads(raw)
        assert ack["ranges"] == [[0, 49]] and ack["epoch"] == EPOCH
    records = telemetry(fleet, "box-a")
    assert sorted(r["seq"] for r in records) == list(range(50))
    box.close()
