"""The durable outbox: identity survives restarts, confirmation, resend and budget."""

from pathlib import Path

import pytest

from agent.outbox import Outbox

pytestmark = pytest.mark.py39


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_seq_and_epoch_survive_restart(tmp_path: Path) -> None:
    path = str(tmp_path / "o.sqlite")
    box = Outbox(path)
    assert [box.append("telemetry", {"n": i}) for i in range(3)] == [0, 1, 2]
    assert box.append("health", {"n": 0}) == 0
    epoch = box.epoch
    box.close()
    again = Outbox(path)
    assert again.epoch == epoch
    assert again.append("telemetry", {"n": 3}) == 3
    assert again.depth() == 5
    # A fresh file (a re-flashed card) gets a new epoch.
    assert Outbox(str(tmp_path / "new.sqlite")).epoch != epoch


def test_health_goes_before_bulk_telemetry(tmp_path: Path) -> None:
    box = Outbox(str(tmp_path / "o.sqlite"))
    for i in range(3):
        box.append("telemetry", {"n": i})
    box.append("health", {"n": 0})
    assert [(r.stream, r.seq) for r in box.pending(10)] == [
        ("health", 0), ("telemetry", 0), ("telemetry", 1), ("telemetry", 2)]


def test_sent_records_wait_for_confirmation_then_resend(tmp_path: Path) -> None:
    clock = Clock()
    box = Outbox(str(tmp_path / "o.sqlite"), clock=clock, resend_after_s=30)
    for i in range(4):
        box.append("telemetry", {"n": i})
    first = box.pending(2)
    box.mark_sent([r.id for r in first])
    assert [r.seq for r in box.pending(10)] == [2, 3]
    clock.now += 31
    assert [r.seq for r in box.pending(10)] == [0, 1, 2, 3]
    box.mark_sent([r.id for r in box.pending(10)])
    clock.now += 31  # seq 0 and 1 are on their second try: they wait twice as long
    assert [r.seq for r in box.pending(10)] == [2, 3]
    box.mark_sent([r.id for r in box.pending(10)])
    assert box.confirm("telemetry", "f" * 16, [(0, 3)]) == 0  # another epoch
    assert box.confirm("telemetry", box.epoch, [(0, 1), (3, 3)]) == 3
    assert [r.seq for r in box.pending(10, exclude=())] == []
    box.resend_unconfirmed()
    assert [r.seq for r in box.pending(10)] == [2]


def test_budget_drops_oldest_as_one_counted_gap(tmp_path: Path) -> None:
    box = Outbox(str(tmp_path / "o.sqlite"), max_bytes=64 * 1024)
    for i in range(2000):
        box.append("telemetry", {"ts": "t", "pad": "x" * 60, "n": i})
    assert box.bytes <= 64 * 1024
    records = box.pending(5000)
    gap = records[0]
    assert gap.seq == 0 and gap.body["gap"]["reason"] == "budget"
    dropped_to = gap.body["gap"]["to_seq"]
    assert box.counter("dropped") == dropped_to + 1
    # Nothing silently lost: the gap and the kept records cover every seq once.
    assert [r.seq for r in records[1:]] == list(range(dropped_to + 1, 2000))


def test_age_cap_drops_old_records(tmp_path: Path) -> None:
    clock = Clock()
    box = Outbox(str(tmp_path / "o.sqlite"), max_age_s=3600, clock=clock)
    for i in range(3):
        box.append("telemetry", {"ts": "t", "n": i})
    clock.now += 7200
    box.append("telemetry", {"ts": "t", "n": 3})
    records = box.pending(10)
    assert records[0].body["gap"] == {"to_seq": 2, "reason": "age"}
    assert [r.seq for r in records] == [0, 3]


def test_replay_after_an_outage_is_paced(tmp_path: Path) -> None:
    """A box with a backlog sends at most replay_records_per_s records a second.

    The sender's clock is stepped by hand: on the wall clock the first burst itself
    takes time under qemu (the bucket refilled while it ran: 252 records, not 200)."""
    from agent.box import Box
    from agent.reactor import Reactor
    from simpul_wire.config import AgentConfig

    config = AgentConfig.model_validate({
        "device": {"device_id": "park-01", "data_dir": str(tmp_path)},
        "publish": {"replay_records_per_s": 200, "batch_max_records": 50,
                    "max_inflight": 1000}})
    clock = Clock()
    box = Box(config, Reactor(monotonic=clock), None, collectors=[])
    for i in range(1000):
        box.outbox.append("telemetry", {"ts": "2026-01-01T00:00:00+00:00", "metrics": {"n": i}})
    sent: list = []
    box.link.connected = True
    box.link.publish = lambda name, payload, on_ack=None, retain=False: (  # type: ignore[method-assign]
        sent.append(payload) or True)
    box.sender.pump()
    first = sum(p.count(b'"seq"') for p in sent)
    assert 200 <= first < 250  # the bucket starts full: one second's worth
    started = clock.now
    for _ in range(20):  # one second in the sender's resume steps (RESUME_S)
        clock.now += 0.05
        box.sender.pump()
    elapsed = clock.now - started
    total = sum(p.count(b'"seq"') for p in sent)
    # Paced: at most 200 a second more, never the other 750 at once.
    assert first < total <= first + 200 * elapsed + 60, (first, total, elapsed)


def test_a_sent_batch_is_what_the_models_would_encode(tmp_path: Path) -> None:
    """The box splices stored records into the batch instead of decoding and encoding
    them: the fleet must read exactly what pydantic's encoding of them would say."""
    from agent.box import Box
    from agent.collectors.base import Accumulator
    from agent.reactor import Reactor
    from simpul_wire.config import AgentConfig
    from simpul_wire.models import Record, TelemetryBatch, decode, encode

    config = AgentConfig.model_validate({
        "device": {"device_id": "park-01", "data_dir": str(tmp_path)}})
    box = Box(config, Reactor(), None, collectors=[])
    acc = Accumulator()
    acc.add("pm2_5", 12.5)
    acc.add("broken", float("nan"))  # no reading: left out, not sent as null
    acc.add("overflow", float("inf"))
    acc.status("air", "stale", "checksum errors")
    acc.status("air2", "ok")
    for _ in range(12):
        box.sampler.store("telemetry", acc)
    for record in box.outbox.pending(3):  # as the byte budget would: one gap, 0..2
        box.outbox.drop(record.id, "budget")
    stored = box.outbox.pending(100)
    assert stored[0].body["gap"] == {"to_seq": 2, "reason": "budget"}
    sent = decode(TelemetryBatch, box.sender.encode("telemetry", stored))
    expected = decode(TelemetryBatch, encode(TelemetryBatch(
        device_id="park-01", stream="telemetry", epoch=box.outbox.epoch,
        ntp_synced=sent.ntp_synced,
        records=[Record(seq=r.seq, **r.body) for r in stored])))  # type: ignore[arg-type]
    assert sent.model_dump(exclude={"ts"}) == expected.model_dump(exclude={"ts"})
    assert sent.ts.tzinfo is not None
    assert [r.seq for r in sent.records] == [r.seq for r in stored]
    assert sent.records[-1].metrics == {"pm2_5": 12.5}
    assert sent.records[-1].sources["air"].reason == "checksum errors"
