"""Rollups, retention and the upgrade report on both engines, through the ingest's own
write path and the API (in process)."""

import warnings
from datetime import datetime, timedelta
from typing import Iterator, List, Tuple

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from fleet_api.auth import create_token
from fleet_api.db import devices, make_engine, migrate, records, rollup_1h, rollup_1m, utcnow
from fleet_api.deps import Services
from fleet_api.devices.telemetry import p95
from fleet_api.ingest import rollups
from fleet_api.ingest.store import Batch, write_batch
from fleet_api.main import create_app
from fleet_api.settings import Settings

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


@pytest.fixture
def setup(db_url: str) -> Iterator[Tuple[Engine, TestClient, str]]:
    engine = make_engine(db_url)
    migrate(engine)
    token = create_token(engine, "viewer")
    app = create_app(Services(engine=engine, settings=Settings(db_url=db_url)))
    with TestClient(app) as c:
        yield engine, c, token
    engine.dispose()


def add_device(engine: Engine, device_id: str, district: str, tier: float) -> None:
    with engine.begin() as conn:
        conn.execute(devices.insert().values(
            device_id=device_id, site=device_id, kind="wifi", district=district, lat=0, lon=0,
            tags=[], password_hash="x", created_at=utcnow(), state="unknown", desired={},
            desired_version=0, reported={}, rejected_count=0, tier_mbps=tier))


def store(engine: Engine, rows: List[dict], received: datetime) -> None:
    batch = Batch(rows=[{**r, "received_at": received, "sources": {}, "gap_to": None}
                        for r in rows])
    with engine.begin() as conn:
        write_batch(conn, batch, received)


def rec(device_id: str, stream: str, seq: int, ts: datetime, **metrics: float) -> dict:
    return {"device_id": device_id, "stream": stream, "epoch": "ab" * 8, "seq": seq,
            "ts": ts, "metrics": metrics}


def test_rollups_fold_late_records_and_retention_keeps_hours(
        setup: Tuple[Engine, TestClient, str]) -> None:
    engine, client, token = setup
    add_device(engine, "p1", "Barat", 100)
    now = utcnow().replace(second=30, microsecond=0)
    t0 = now - timedelta(minutes=10)
    store(engine, [rec("p1", "telemetry", i, t0 + timedelta(seconds=10 * i), pm2_5=float(i))
                   for i in range(12)], now - timedelta(seconds=30))
    assert rollups.run(engine, rollups.Retention(), now=now) == 12
    # A late backlog for the same minutes arrives afterwards; it is folded in, once.
    store(engine, [rec("p1", "telemetry", 100, t0 + timedelta(seconds=5), pm2_5=50.0)],
          now + timedelta(seconds=1))
    assert rollups.run(engine, rollups.Retention(), now=now + timedelta(seconds=10)) == 1
    assert rollups.run(engine, rollups.Retention(), now=now + timedelta(seconds=20)) == 0
    headers = {"Authorization": f"Bearer {token}"}
    minutes = client.get("/api/v1/devices/p1/rollups", headers=headers,
                         params={"resolution": "1m", "metric": "pm2_5"}).json()["data"]
    first = minutes[0]["metrics"]["pm2_5"]
    minute_of_t0 = [v for v in range(12) if (t0 + timedelta(seconds=10 * v)).minute == t0.minute]
    assert first["count"] == len(minute_of_t0) + 1 and first["max"] == 50.0
    assert first["min"] == 0.0
    assert sum(b["metrics"]["pm2_5"]["count"] for b in minutes) == 13
    hours = client.get("/api/v1/devices/p1/rollups", headers=headers,
                       params={"resolution": "1h"}).json()["data"]
    assert sum(b["metrics"]["pm2_5"]["count"] for b in hours) == 13
    # Retention: raw records and minutes go first, hours stay.
    later = now + timedelta(days=40)
    rollups.run(engine, rollups.Retention(), now=later)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(records)).scalar() == 0
        assert conn.execute(select(func.count()).select_from(rollup_1m)).scalar() == 0
        assert conn.execute(select(func.count()).select_from(rollup_1h)).scalar() >= 1


def test_upgrade_report_ranks_points_by_p95_use(setup: Tuple[Engine, TestClient, str]) -> None:
    engine, client, token = setup
    now = utcnow().replace(second=0, microsecond=0)
    # Three points: busy on 100, quiet on 100, busy on 300 (already upgraded).
    plans = {"busy": ("Barat", 100, 90.0), "quiet": ("Barat", 100, 10.0),
             "big": ("Timur", 300, 120.0)}
    for device_id, (district, tier, level) in plans.items():
        add_device(engine, device_id, district, tier)
        rows = [rec(device_id, "health", m, now - timedelta(minutes=200 - m),
                    tier_down_mbps=level if m % 10 else level * 1.1,
                    tier_up_mbps=level / 4) for m in range(200)]
        store(engine, rows, now - timedelta(minutes=1))
    rollups.run(engine, rollups.Retention(), now=now)
    report = client.get("/api/v1/reports/upgrade", headers={"Authorization": f"Bearer {token}"}
                        ).json()
    ranked = [(r["device_id"], r["p95_use"]) for r in report["data"]]
    assert [d for d, _ in ranked] == ["busy", "big", "quiet"]
    busy = report["data"][0]
    assert busy["minutes"] == 200 and busy["p95_rx_mbps"] == pytest.approx(99.0)
    assert busy["p95_use"] == pytest.approx(0.99)
    assert report["districts"][0]["district"] == "Barat"
    assert report["districts"][0]["saturated"] == 1


def test_p95_nearest_rank() -> None:
    assert p95([]) is None
    assert p95([float(v) for v in range(1, 101)]) == 95.0
    assert p95([3.0]) == 3.0



