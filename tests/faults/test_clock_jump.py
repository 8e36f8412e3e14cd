"""The box's wall clock steps back an hour (a Pi has no RTC; NTP or a technician sets it).

Seq, not time, orders a stream: every record still arrives exactly once, and the fleet
shows the step in the records' `ts` as it happened. The host clock is never touched: a
real agent runs under libfaketime with a time-offset file, and the outbox takes an
injectable clock.
"""

import os
from datetime import datetime
from pathlib import Path

import pytest

from agent.outbox import Outbox
from testbed.harness import Broker, Fleet, telemetry, wait_until
from tests.faults.helpers import assert_exactly_once, make_box, publish

LIBFAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"
HOUR = 3600.0


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def test_resend_after_the_clock_went_back(tmp_path: Path) -> None:
    """A sent record the fleet has not confirmed is sent again after resend_after_s,
    even when the clock stepped back after it was sent (its sent_at is in the future)."""
    clock = Clock()
    outbox = Outbox(str(tmp_path / "o.sqlite"), clock=clock, resend_after_s=30)
    outbox.append("telemetry", {"ts": "t", "n": 0})
    outbox.mark_sent([r.id for r in outbox.pending(10)])
    assert outbox.pending(10) == []
    clock.now -= HOUR
    clock.now += 31
    assert [r.seq for r in outbox.pending(10)] == [0]


@pytest.mark.slow
def test_wall_clock_back_an_hour(scratch: Path, broker: Broker, fleet: Fleet) -> None:
    offset = scratch / "faketime"
    offset.write_text("+0\n")
    box = make_box(scratch, fleet, "clock-back", publish(sample_s=0.25, health_s=1))
    box.start(env={"LD_PRELOAD": LIBFAKETIME, "FAKETIME_TIMESTAMP_FILE": str(offset),
                   "FAKETIME_CACHE_DURATION": "1", "FAKETIME_DONT_FAKE_MONOTONIC": "1"})
    try:
        before = wait_until(lambda: (lambda r: len(r) >= 8 and r)(
            telemetry(fleet, box.device_id)), 30, what="records before the step")
        tmp = scratch / "faketime.new"
        tmp.write_text("-1h\n")
        os.replace(tmp, offset)
        # Records made after the step arrive promptly (at 4 a second, 20 in about 5 s).
        wait_until(lambda: len(telemetry(fleet, box.device_id)) >= len(before) + 20, 20,
                   what="records after the step")
    finally:
        box.stop()
    rows = assert_exactly_once(fleet, box)["telemetry"]
    by_seq = sorted(rows, key=lambda r: r["seq"])
    stamps = [datetime.fromisoformat(r["ts"]).timestamp() for r in by_seq]
    steps = [b - a for a, b in zip(stamps, stamps[1:])]
    back = [s for s in steps if s < 0]
    # Exactly one step back, of an hour less one sample interval; otherwise forward.
    assert len(back) == 1 and -HOUR <= back[0] <= -HOUR + 2, back
    assert all(0 <= s <= 2 for s in steps if s >= 0)
    # The fleet's receive time keeps the real order.
    received = [r["received_at"] for r in by_seq]
    assert received == sorted(received)
    assert "Traceback" not in box.logs()
