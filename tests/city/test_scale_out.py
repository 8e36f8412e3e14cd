"""Scale-out on one machine: two `simpul-fleet serve` processes and two `simpul-fleet
ingest` workers on one PostgreSQL database and one broker, a few hundred simulated
boxes, one ingest worker killed (-9) and restarted in the middle: every record the boxes
numbered is stored exactly once."""

import signal
import time
from pathlib import Path

import httpx
import psycopg
import pytest

from testbed.stack import PgDatabase, Stack, load_report, seq_check

BOXES = 300


@pytest.mark.slow
@pytest.mark.timeout(280)
def test_two_apis_and_two_workers_store_every_record_once(city_dir: Path) -> None:
    db = PgDatabase("simpul_t_city")
    stack = Stack(city_dir, db.url)
    try:
        stack.start_broker()
        stack.start_serve(2)
        stack.start_ingest(2)
        report = city_dir / "report.json"
        # Registered through the second API process; the first serves the checks.
        sim = stack.sim(BOXES, 2.0, 30, 120, report, api=1,
                        extra=["--prefix", "scale", "--resend-after", "5", "--ramp", "100"])
        time.sleep(15)
        assert sim.p.poll() is None, (city_dir / "sim.log").read_text()[-2000:]
        stack.ingests[0].stop(signal.SIGKILL)  # mid-batch: its unacked messages come again
        time.sleep(2)
        stack.restart_ingest(0)
        assert sim.p.wait(240) == 0, (city_dir / "sim.log").read_text()[-2000:]
        result = load_report(report)
        check = seq_check(db.url, result)

        assert result["pending"] == 0, "outboxes not emptied: acknowledgements went missing"
        # Every box ran and numbered records (how many depends on the machine's load).
        assert all(b["next_seq"].get("telemetry", 0) >= 3 for b in result["boxes"].values())
        assert check["expected"] >= BOXES * 5, check
        assert check["missing"] == 0, check
        assert check["duplicates"] == 0, check
        assert check["stored"] == check["expected"], check
        with psycopg.connect(db.url) as conn:
            workers = {r[0] for r in conn.execute("SELECT name FROM workers")}
            total = conn.execute("SELECT COUNT(*) FROM records").fetchone()
        assert {"simpul_ingest_serve_1", "simpul_ingest_serve_2", "simpul_ingest_extra_1",
                "simpul_ingest_extra_2"} <= workers
        assert total is not None and total[0] == check["stored"]
        for i in (0, 1):  # both API processes see the whole fleet
            resp = httpx.get(f"{stack.url(i)}/api/v1/devices", params={"limit": 1},
                             headers={"Authorization": f"Bearer {stack.token}"}, timeout=30)
            assert resp.status_code == 200 and resp.json()["count"] == BOXES
    finally:
        stack.stop()
        db.close()
