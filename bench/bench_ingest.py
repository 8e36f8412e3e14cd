"""Ingest throughput at QoS 1, from the broker to committed rows, against mosquitto_sub.

One run, per engine (SQLite, PostgreSQL) and per worker count (1, 2):
1. a fresh database with DEVICES registered devices;
2. the persistent sessions exist, nobody connected: the ingest workers' (shared
   subscription `$share/simpul-ingest/...`, fixed client ids) and a `mosquitto_sub -c`
   reference session on the same topics;
3. MESSAGES QoS 1 telemetry messages (one record each, the worst case) are published
   into the broker, so both backlogs are queued;
4. time `mosquitto_sub -c -q 1 -C MESSAGES` draining its backlog (process start to exit);
5. time `simpul-fleet ingest` worker(s) from process start until the last record is
   committed (polling the row count), and check: every (device, seq) stored once.

Each figure is the median of --runs runs. The ratio is mosquitto_sub time / ingest time
(1.0 = as fast as mosquitto_sub).

    PYTHONPATH=. .venv/bin/python bench/bench_ingest.py [--messages 100000] [--runs 3]
"""

import argparse
import itertools
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import paho.mqtt.client as mqtt
import psycopg
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fleet_api.broker.accounts import FLEET_USER  # noqa: E402
from fleet_api.db import devices, make_engine, migrate, records, utcnow, workers  # noqa: E402
from simpul_wire import Record, SourceStatus, TelemetryBatch, encode  # noqa: E402
from simpul_wire import utcnow as wire_now  # noqa: E402
from testbed.harness import BIN, Broker, scratch_dir  # noqa: E402

PG_ADMIN = os.environ.get("SIMPUL_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/test")
EPOCH = "0123456789abcdef"
_names = itertools.count()


def pg_database() -> str:
    name = f"simpul_bench_{os.getpid()}_{next(_names)}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return name


def drop_pg(name: str) -> None:
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def register(engine: Engine, count: int) -> List[str]:
    ids = [f"bench-{i:05d}" for i in range(count)]
    with engine.begin() as conn:
        conn.execute(devices.insert(), [{
            "device_id": d, "site": d, "kind": "sensor", "district": "Bench", "lat": 0.0,
            "lon": 0.0, "tags": [], "password_hash": "x", "created_at": utcnow(),
            "state": "unknown", "desired": {}, "desired_version": 0, "reported": {},
            "rejected_count": 0, "published_version": 0} for d in ids])
    return ids


def payloads(ids: List[str], total: int) -> List[Tuple[str, bytes]]:
    out = []
    now = wire_now()
    ok = {"pms": SourceStatus(state="ok")}
    for n in range(total):
        device_id = ids[n % len(ids)]
        seq = n // len(ids)
        rec = Record(seq=seq, ts=now, metrics={"pm2_5": 12.5 + seq % 7, "pm10": 20.0,
                                               "temp_c": 29.5, "rh": 71.0, "connected": 14},
                     sources=ok)
        body = TelemetryBatch(device_id=device_id, epoch=EPOCH, records=[rec])
        out.append((f"simpul/v1/{device_id}/telemetry", encode(body)))
    return out


def preload(port: int, password: str, messages: List[Tuple[str, bytes]]) -> float:
    """Publish at QoS 1 with a window, wait for every PUBACK; return seconds."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                         client_id=f"simpul_bench-pub-{os.getpid()}", protocol=mqtt.MQTTv5)
    client.username_pw_set(FLEET_USER, password)
    client.max_inflight_messages_set(1000)
    # A window of our own: paho's queue handling grows quadratic with a deep backlog.
    window = threading.Semaphore(1000)
    client.on_publish = lambda c, u, mid, rc, p: window.release()
    client.connect("127.0.0.1", port)
    client.loop_start()
    started = time.perf_counter()
    for topic_name, body in messages:
        window.acquire()
        client.publish(topic_name, body, qos=1)
    for _ in range(1000):
        window.acquire()
    took = time.perf_counter() - started
    client.disconnect()
    client.loop_stop()
    return took


def forget_sessions(port: int, password: str, client_ids: List[str]) -> None:
    """Clean-start each id once: its session and its queue go, so later runs' backlogs
    are not shared with (or queued for) an old run's sessions."""
    for client_id in client_ids:
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                             protocol=mqtt.MQTTv5)
        client.username_pw_set(FLEET_USER, password)
        done = threading.Event()
        client.on_connect = lambda c, u, f, rc, p, d=done: d.set()
        client.connect("127.0.0.1", port, clean_start=True)
        client.loop_start()
        done.wait(10)
        client.disconnect()
        client.loop_stop()


def ref_sub(broker: Broker, client_id: str, count: Optional[int]) -> List[str]:
    argv = ["mosquitto_sub", "-V", "311", "-c", "-i", client_id, "-q", "1",
            "-t", "simpul/v1/+/telemetry", "-h", "127.0.0.1", "-p", str(broker.fleet_port),
            "-u", FLEET_USER, "-P", broker.fleet_password]
    return argv + (["-C", str(count)] if count else ["-E"])


def ingest_argv(db_url: str, broker: Broker, client_id: str) -> List[str]:
    return [str(BIN / "simpul-fleet"), "ingest", "--db", db_url, "--broker-data",
            str(broker.data), "--client-id", client_id]


def stored(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(records)).scalar_one())


def make_sessions(engine: Engine, db_url: str, broker: Broker, names: List[str],
                  log: Path) -> None:
    """Start each worker once (it subscribes on its persistent session), then stop it."""
    procs = [subprocess.Popen(ingest_argv(db_url, broker, n), stdout=open(log, "ab"),
                              stderr=subprocess.STDOUT, cwd=REPO) for n in names]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            up = conn.execute(select(func.count()).select_from(workers)
                              .where(workers.c.connected.is_(True))).scalar_one()
        if up >= len(names):
            break
        time.sleep(0.2)
    time.sleep(1.0)  # SUBACKs
    for p in procs:
        p.terminate()
    for p in procs:
        p.wait(15)


def one_run(broker: Broker, db_url: str, engine: Engine, total: int, n_workers: int,
            n_devices: int, log: Path, tag: str) -> Dict[str, float]:
    ids = register(engine, n_devices)
    names = [f"simpul_bench-ingest-{tag}-{i}" for i in range(n_workers)]
    make_sessions(engine, db_url, broker, names, log)
    ref_id = f"simpul_bench-ref-{tag}"
    subprocess.run(ref_sub(broker, ref_id, None), check=True, timeout=10)
    publish_s = preload(broker.fleet_port, broker.fleet_password, payloads(ids, total))
    t0 = time.perf_counter()
    subprocess.run(ref_sub(broker, ref_id, total), check=True, timeout=300,
                   stdout=subprocess.DEVNULL)
    ref_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    procs = [subprocess.Popen(ingest_argv(db_url, broker, n), stdout=open(log, "ab"),
                              stderr=subprocess.STDOUT, cwd=REPO) for n in names]
    first: Optional[float] = None
    count = 0
    deadline = time.monotonic() + 600
    while count < total and time.monotonic() < deadline:
        time.sleep(0.05)
        count = stored(engine)
        if first is None and count:
            first = time.perf_counter() - t0
    ingest_s = time.perf_counter() - t0
    for p in procs:
        p.terminate()
    for p in procs:
        p.wait(15)
    forget_sessions(broker.fleet_port, broker.fleet_password, [*names, ref_id])
    with engine.connect() as conn:
        distinct = conn.execute(select(func.count()).select_from(
            select(records.c.device_id, records.c.seq).distinct().subquery())).scalar_one()
    if count != total or distinct != total:
        raise SystemExit(f"LOSS: {count} rows, {distinct} distinct, {total} sent")
    return {"publish_s": publish_s, "ref_s": ref_s, "ingest_s": ingest_s,
            "first_commit_s": first or 0.0, "rate": total / ingest_s,
            "rate_after_first": total / max(1e-9, ingest_s - (first or 0.0)),
            "ratio": ref_s / ingest_s}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--devices", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--engines", default="sqlite,postgresql")
    parser.add_argument("--workers", default="1,2")
    args = parser.parse_args()
    if not shutil.which("mosquitto_sub"):
        raise SystemExit("mosquitto_sub is missing: apt-get install mosquitto-clients")
    base = scratch_dir("simpul-bench-")
    broker = Broker(base).start()
    results: Dict[str, List[Dict[str, float]]] = {}
    try:
        for engine_name in args.engines.split(","):
            for n_workers in [int(w) for w in args.workers.split(",")]:
                key = f"{engine_name}, {n_workers} worker{'s' if n_workers > 1 else ''}"
                for run in range(args.runs):
                    tag = f"{engine_name[:2]}{n_workers}{run}"
                    pg = None
                    if engine_name == "sqlite":
                        db_url = f"sqlite:///{base}/bench-{tag}.db"
                    else:
                        pg = pg_database()
                        db_url = PG_ADMIN.rsplit("/", 1)[0] + "/" + pg
                    engine = make_engine(db_url)
                    migrate(engine)
                    try:
                        r = one_run(broker, db_url, engine, args.messages, n_workers,
                                    args.devices, base / "ingest.log", tag)
                    finally:
                        engine.dispose()
                        if pg:
                            drop_pg(pg)
                    results.setdefault(key, []).append(r)
                    print(f"{key} run {run + 1}: ingest {r['ingest_s']:.2f}s "
                          f"({r['rate']:,.0f} records/s; {r['rate_after_first']:,.0f}/s after "
                          f"the first commit at {r['first_commit_s']:.2f}s), mosquitto_sub "
                          f"{r['ref_s']:.2f}s, ratio {r['ratio']:.2f}; preload "
                          f"{r['publish_s']:.1f}s", flush=True)
    finally:
        broker.stop()
        shutil.rmtree(base, ignore_errors=True)
    print(f"\n{args.messages:,} QoS 1 messages (1 record each), {args.devices} devices, "
          f"median of {args.runs}:")
    print("| setup | ingest s | records/s | after first commit /s | mosquitto_sub s | ratio |")
    print("|---|---|---|---|---|---|")
    for key, runs in results.items():
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        print(f"| {key} | {med['ingest_s']:.2f} | {med['rate']:,.0f} | "
              f"{med['rate_after_first']:,.0f} | {med['ref_s']:.2f} | {med['ratio']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
