"""A gap record the fleet may already hold must not grow.

The fleet keeps the first row it gets for a (device, stream, epoch, seq) and ignores a
repeat. If the box folds a newly dropped record into a gap it has already sent, the
grown gap comes back to the fleet as a repeat of the old one: ignored, then confirmed,
and the box forgets it, so the folded seq is lost without a trace. This happens when a
sent record was lost by the broker (the reason for end-to-end confirmation) and the
budget drops it before the resend. The outbox and the fleet's own store, for real.
"""

from pathlib import Path
from typing import Dict, List, Set

from sqlalchemy import select

from agent.outbox import Outbox, StoredRecord
from fleet_api.db import make_engine, migrate, records, utcnow
from fleet_api.ingest.store import insert_records, record_row
from simpul_wire.models import Record, seq_ranges

BODY = {"ts": "2026-11-23T08:00:00+00:00", "metrics": {f"m{i}": float(i) for i in range(60)},
        "sources": {}}


class FleetStore:
    def __init__(self, path: Path) -> None:
        self.engine = make_engine(f"sqlite:///{path}")
        migrate(self.engine)

    def deliver(self, epoch: str, batch: List[StoredRecord]) -> List[int]:
        """Store a batch as the ingest does; return the seqs it confirms (all of them)."""
        now = utcnow()
        rows = [record_row("gap-box", "telemetry", epoch, Record(seq=r.seq, **r.body), now)
                for r in batch]
        with self.engine.begin() as conn:
            insert_records(conn, rows)
        return [r.seq for r in batch]

    def covered(self) -> List[int]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(records.c.seq, records.c.gap_to)).fetchall()
        out: List[int] = []
        for seq, gap_to in rows:
            out.extend(range(seq, (gap_to if gap_to is not None else seq) + 1))
        return out


def test_a_sent_gap_never_grows(tmp_path: Path) -> None:
    outbox = Outbox(str(tmp_path / "outbox.sqlite"), max_bytes=64 * 1024)
    fleet = FleetStore(tmp_path / "fleet.db")
    for _ in range(100):
        outbox.append("telemetry", BODY)
    first = outbox.pending(1000)
    assert first[0].body.get("gap"), "the budget should have made a gap"
    gap_end = int(first[0].body["gap"]["to_seq"])  # type: ignore[index]
    outbox.mark_sent([r.id for r in first])
    # The broker loses the record right after the gap (kill -9 before its autosave); the
    # fleet stores the rest, and its confirmations are lost too (QoS 0).
    lost = gap_end + 1
    fleet.deliver(outbox.epoch, [r for r in first if r.seq != lost])
    # More samples: the budget now drops `lost` too, before it is sent again.
    for _ in range(5):
        outbox.append("telemetry", BODY)
    # Reconnect: everything unconfirmed is sent again, and this time confirmed.
    outbox.resend_unconfirmed()
    for _ in range(10):
        batch = outbox.pending(200)
        if not batch:
            break
        outbox.mark_sent([r.id for r in batch])
        done = fleet.deliver(outbox.epoch, batch)
        outbox.confirm("telemetry", outbox.epoch, seq_ranges(done))
    numbered = outbox.append("telemetry", BODY)  # the next seq: all below it were made
    held: Set[int] = {r.seq for r in outbox.pending(1000)} - {numbered}
    seen: Dict[int, int] = {}
    for seq in fleet.covered():
        seen[seq] = seen.get(seq, 0) + 1
    missing = [s for s in range(numbered) if s not in seen and s not in held]
    assert missing == [], f"forgotten by the box and never stored: {missing}"
    assert all(count == 1 for count in seen.values())
