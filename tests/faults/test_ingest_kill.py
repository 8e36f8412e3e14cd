"""kill -9 of one ingest worker of two on the shared subscription, mid-batch: every record
is stored exactly once. The worker is first frozen (SIGSTOP) so the broker hands it
messages it never commits, then killed with them unacknowledged."""

import signal
import time
from pathlib import Path

import pytest

from testbed.harness import Broker, Fleet, Process, tool, wait_until
from tests.faults.helpers import assert_exactly_once, fleet_count, make_box, prefill, publish

pytestmark = pytest.mark.slow

BACKLOG = 800
BOXES = ("ingest-a", "ingest-b", "ingest-c")


def worker(scratch: Path, broker: Broker, fleet: Fleet) -> Process:
    return Process([tool("simpul-fleet"), "ingest", "--db", fleet.db_url, "--broker-data",
                    str(broker.data), "--client-id", "simpul_ingest_2"],
                   scratch / "ingest-2.log")


def test_kill_ingest_worker_mid_batch(scratch: Path, broker: Broker, fleet: Fleet) -> None:
    second = worker(scratch, broker, fleet).start()
    wait_until(lambda: "ingest simpul_ingest_2 connected" in second.output(), 20,
               what="second ingest worker connected")
    boxes = [make_box(scratch, fleet, d, publish(sample_s=0.2, health_s=1, batch=5,
                                                 inflight=1)) for d in BOXES]
    for box in boxes:
        prefill(box, BACKLOG)
    try:
        for box in boxes:
            box.start()
        total = lambda: sum(fleet_count(fleet, b.device_id) for b in boxes)  # noqa: E731
        wait_until(lambda: total() >= BACKLOG // 2, 60, interval=0.05,
                   what="traffic flowing through both workers")
        # Frozen, the worker still holds its share of the round robin: the broker sends
        # it messages that sit unacknowledged in its socket.
        second.signal(signal.SIGSTOP)
        time.sleep(1.0)
        second.signal(signal.SIGKILL)
        second.stop()
        at_kill = total()
        assert at_kill < len(boxes) * BACKLOG, "the flow had finished before the kill"
        time.sleep(2)
        second = worker(scratch, broker, fleet).start()
        wait_until(lambda: second.output().count("ingest simpul_ingest_2 connected") >= 2,
                   20, what="second ingest worker back")
        wait_until(lambda: all(fleet_count(fleet, b.device_id) >= BACKLOG + 5 for b in boxes),
                   120, what="every backlog stored")
        time.sleep(1)
    finally:
        for box in boxes:
            box.stop()
        second.stop()
    for box in boxes:
        rows = assert_exactly_once(fleet, box)
        telemetry = sorted(rows["telemetry"], key=lambda r: r["seq"])
        assert [r["metrics"]["n"] for r in telemetry[:BACKLOG]] == \
            [float(i) for i in range(BACKLOG)]
    assert "Traceback" not in second.output() + fleet.process.output()
