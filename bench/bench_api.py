"""API latency at city scale: 10,000 devices and a week of hourly rollups.

Fills a fresh database directly (10,000 devices; a week of 1-hour rollups of three
metrics for every device; a week of per-minute raw telemetry for a few devices), starts
a real `simpul-fleet serve` on it, and times with one client:
- GET /api/v1/devices (the default page of 1,000) and ?district= (about 1,000);
- GET /api/v1/devices/{id}/telemetry for the last day (1,000 records, the default limit);
- GET /api/v1/devices/{id}/rollups?resolution=1h for the week.
Prints p50/p95 over --requests requests per endpoint (after 5 warm-up requests).

    PYTHONPATH=. .venv/bin/python bench/bench_api.py [--engine sqlite|postgresql]
"""

import argparse
import os
import statistics
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Dict, List

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.bench_ingest import PG_ADMIN, drop_pg, pg_database  # noqa: E402
from fleet_api.auth import create_token  # noqa: E402
from fleet_api.db import devices, make_engine, migrate, rollup_1h, utcnow  # noqa: E402
from fleet_api.ingest.store import insert_records  # noqa: E402
from testbed.harness import BIN, scratch_dir, wait_until  # noqa: E402
from testbed.ports import free_port  # noqa: E402

DISTRICTS = [f"Kecamatan {i}" for i in range(10)]


def fill(db_url: str, n_devices: int, raw_devices: int) -> str:
    engine = make_engine(db_url)
    migrate(engine)
    now = utcnow().replace(minute=0, second=0, microsecond=0)
    ids = [f"pos-{i:05d}" for i in range(n_devices)]
    started = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(devices.insert(), [{
            "device_id": d, "site": f"Titik {d}", "kind": "wifi",
            "district": DISTRICTS[i % len(DISTRICTS)], "lat": -6.2, "lon": 106.8,
            "tags": ["bench"], "password_hash": "x", "created_at": now, "state": "online",
            "last_seen": now, "desired": {}, "desired_version": 0, "reported": {},
            "rejected_count": 0, "published_version": 0, "tier_mbps": 100.0}
            for i, d in enumerate(ids)])
    hours = [now - timedelta(hours=h) for h in range(168)]
    with engine.begin() as conn:
        for d in ids:
            rows = [{"device_id": d, "stream": "telemetry", "metric": m, "bucket": b,
                     "count": 60, "sum": 60 * v, "min": v, "max": v}
                    for b in hours for m, v in (("pm2_5", 12.0), ("connected", 20.0),
                                                ("noise_db", 55.0))]
            conn.execute(rollup_1h.insert(), rows)
    with engine.begin() as conn:
        for d in ids[:raw_devices]:
            rows = [{"device_id": d, "stream": "telemetry", "epoch": "ab" * 8, "seq": m,
                     "ts": now - timedelta(minutes=m), "received_at": now,
                     "metrics": {"pm2_5": 12.0 + m % 5, "connected": 20.0},
                     "sources": {"pms": {"state": "ok"}}, "gap_to": None}
                    for m in range(7 * 24 * 60)]
            insert_records(conn, rows)
    token = create_token(engine, "viewer", "bench")
    engine.dispose()
    print(f"filled {n_devices} devices, {n_devices * 168 * 3:,} hourly rollup rows and "
          f"{raw_devices * 7 * 24 * 60:,} raw records in {time.perf_counter() - started:.0f}s",
          flush=True)
    return token


def timings(client: httpx.Client, url: str, params: Dict[str, str], n: int) -> List[float]:
    out = []
    for i in range(n + 5):
        t0 = time.perf_counter()
        resp = client.get(url, params=params)
        took = time.perf_counter() - t0
        if resp.status_code != 200:
            raise SystemExit(f"{url}: {resp.status_code} {resp.text[:200]}")
        if i >= 5:
            out.append(took * 1000)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", default="sqlite", choices=["sqlite", "postgresql"])
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--raw-devices", type=int, default=5)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--settle", type=float, default=20.0,
                        help="seconds after start-up before timing: the fleet's first "
                             "rollup pass and alert window run then")
    args = parser.parse_args()
    base = scratch_dir("simpul-bench-api-")
    pg = None
    if args.engine == "sqlite":
        db_url = f"sqlite:///{base}/fleet.db"
    else:
        pg = pg_database()
        db_url = PG_ADMIN.rsplit("/", 1)[0] + "/" + pg
    port = free_port()
    proc = None
    try:
        token = fill(db_url, args.devices, args.raw_devices)
        proc = subprocess.Popen([str(BIN / "simpul-fleet"), "serve", "--db", db_url,
                                 "--port", str(port)], stdout=open(base / "serve.log", "ab"),
                                stderr=subprocess.STDOUT, cwd=REPO)
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: _up(url), 60, what="serve")
        time.sleep(args.settle)
        day = (utcnow() - timedelta(days=1)).isoformat() + "Z"
        week = (utcnow() - timedelta(days=7)).isoformat() + "Z"
        cases = [
            ("device list (1,000 of 10,000)", "/api/v1/devices", {}),
            ("device list, one district", "/api/v1/devices", {"district": DISTRICTS[3]}),
            ("telemetry, last day", "/api/v1/devices/pos-00001/telemetry", {"since": day}),
            ("rollups 1h, a week", "/api/v1/devices/pos-04321/rollups",
             {"resolution": "1h", "since": week}),
        ]
        print(f"{args.engine}, {args.requests} requests each, one client, load "
              f"{os.getloadavg()[0]:.2f}:")
        print("| endpoint | p50 ms | p95 ms |")
        print("|---|---|---|")
        with httpx.Client(base_url=url, timeout=30,
                          headers={"Authorization": f"Bearer {token}"}) as client:
            for name, path, params in cases:
                got = timings(client, path, params, args.requests)
                p95 = sorted(got)[max(0, int(0.95 * len(got)) - 1)]
                print(f"| {name} | {statistics.median(got):.1f} | {p95:.1f} |", flush=True)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(15)
        if pg:
            drop_pg(pg)
        subprocess.run(["rm", "-rf", str(base)], check=False)
    return 0


def _up(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


if __name__ == "__main__":
    sys.exit(main())
