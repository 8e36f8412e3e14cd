"""The fleet's PostgreSQL restarted (crash-stopped, down for a while, started) in the middle
of a flow: the ingest does not acknowledge what it could not commit, so every record is
stored exactly once."""

import time
from pathlib import Path
from typing import Iterator

import pytest

from testbed.harness import Broker, Fleet, telemetry, wait_until
from tests.faults.helpers import assert_exactly_once, make_box, prefill, publish
from tests.faults.postgres import Cluster

pytestmark = pytest.mark.slow

BACKLOG = 600
BOXES = ("pg-a", "pg-b")


@pytest.fixture
def cluster(scratch: Path) -> Iterator[Cluster]:
    pg = Cluster(scratch).init()
    pg.start()
    yield pg
    pg.stop("immediate")


@pytest.fixture
def fleet_on_pg(scratch: Path, broker: Broker, cluster: Cluster) -> Iterator[Fleet]:
    fleet = Fleet(scratch, broker, db_url=cluster.url)
    try:
        yield fleet.start()
    finally:
        fleet.stop()


def test_database_restart_mid_flow(scratch: Path, fleet_on_pg: Fleet, cluster: Cluster) -> None:
    fleet = fleet_on_pg
    boxes = [make_box(scratch, fleet, d, publish(sample_s=0.2, health_s=1, batch=5,
                                                 inflight=1)) for d in BOXES]
    for box in boxes:
        prefill(box, BACKLOG)
    try:
        for box in boxes:
            box.start()
        wait_until(lambda: all(len(telemetry(fleet, b.device_id)) >= 50 for b in boxes), 60,
                   interval=0.05, what="records flowing into PostgreSQL")
        cluster.crash()
        time.sleep(5)  # boxes keep publishing into an ingest that cannot commit
        cluster.start()
        wait_until(lambda: all(len(telemetry(fleet, b.device_id)) >= BACKLOG + 20
                               for b in boxes), 120, what="backlogs stored after the restart")
    finally:
        for box in boxes:
            box.stop()
    log = fleet.process.output()
    # The fault reached the ingest's write path, and it held its acknowledgements.
    assert "database write failed" in log and "stay unacknowledged" in log
    for box in boxes:
        rows = assert_exactly_once(fleet, box)
        telemetry_rows = sorted(rows["telemetry"], key=lambda r: r["seq"])
        assert [r["metrics"]["n"] for r in telemetry_rows[:BACKLOG]] == \
            [float(i) for i in range(BACKLOG)]
