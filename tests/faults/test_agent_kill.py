"""kill -9 of the agent while it publishes a long backlog: after each restart, every
record arrives exactly once, in one epoch (records sent but unconfirmed are sent again
and the fleet's unique key absorbs the repeats)."""

import signal
import time
from pathlib import Path

import pytest

from testbed.harness import Broker, Fleet, wait_until
from tests.faults.helpers import (
    assert_exactly_once,
    fleet_count,
    make_box,
    prefill,
    publish,
)

pytestmark = pytest.mark.slow

BACKLOG = 3000


def test_kill_agent_mid_batch(scratch: Path, broker: Broker, fleet: Fleet) -> None:
    # Small batches and one in flight: the backlog drains in hundreds of round trips,
    # so each kill lands with batches published and not yet confirmed.
    box = make_box(scratch, fleet, "kill-agent", publish(sample_s=0.2, health_s=1,
                                                         batch=5, inflight=1))
    epoch = prefill(box, BACKLOG)
    kills = []
    for threshold in (BACKLOG // 10, BACKLOG * 4 // 10, BACKLOG * 7 // 10):
        box.start()
        wait_until(lambda t=threshold: fleet_count(fleet, box.device_id) >= t, 60,
                   interval=0.01, what=f"{threshold} records stored")
        assert box.process is not None
        box.process.signal(signal.SIGKILL)
        box.process.proc.wait(5)  # type: ignore[union-attr]
        kills.append(fleet_count(fleet, box.device_id))
        box.process.stop()
    # Every kill hit a flow in progress, not a drained outbox.
    assert all(k < BACKLOG for k in kills), kills
    box.start()
    wait_until(lambda: fleet_count(fleet, box.device_id) >= BACKLOG + 10, 90,
               what="backlog and new samples stored")
    time.sleep(1)
    box.stop()
    rows = assert_exactly_once(fleet, box)
    telemetry = sorted(rows["telemetry"], key=lambda r: r["seq"])
    assert telemetry[0]["epoch"] == epoch
    # The backlog's content arrived with its own seq: record i carries n = i.
    assert [r["metrics"]["n"] for r in telemetry[:BACKLOG]] == [float(i) for i in range(BACKLOG)]
    assert all(r["metrics"]["pm2_5"] == 12.5 for r in telemetry[BACKLOG:])
    # Four agent starts, and the box says so in its logs; nothing crashed on restart.
    assert box.logs().count("agent kill-agent running") == 4
    assert "Traceback" not in box.logs()
