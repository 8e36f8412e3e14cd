"""City soak: N virtual boxes (one `simpul-sim fleet` process) at one message each per
--interval, against Mosquitto (city profile), `simpul-fleet serve` on PostgreSQL (a
database of our own, dropped after) and one extra ingest worker.

Every --sample seconds it records the fleet's CPU and RSS (serve and ingest), the
simulator's and the broker's, connected boxes, the ingest lag p99 of the records stored
in that window (received_at - the box's ts; the boxes share this host's clock), and API
latency (GET /api/v1/devices?limit=100 and one device, --api-calls each). At the end
the simulator stops sampling, drains its outboxes, and every record is checked by seq
number: none missing, none twice.

    PYTHONPATH=. python bench/bench_city.py [--devices 10000] [--interval 30]
        [--duration 1800] [--quick] [--json FILE]
"""

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from testbed.harness import scratch
from testbed.stack import PgDatabase, Stack, load_report, seq_check


def established(port: int) -> int:
    out = subprocess.run(["ss", "-Htn", "state", "established", f"( sport = :{port} )"],
                         capture_output=True, text=True).stdout
    return len(out.splitlines())


def lag_p99(db_url: str, since_s: float) -> Any:
    import psycopg

    with psycopg.connect(db_url) as conn:
        row = conn.execute(
            "SELECT percentile_cont(0.99) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM "
            "received_at - ts)), COUNT(*) FROM records WHERE received_at > "
            "(now() AT TIME ZONE 'UTC') - make_interval(secs => %s)", (since_s,)).fetchone()
    return (None if row is None or row[0] is None else float(row[0])), int(row[1] if row else 0)


def pctl(values: List[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=10000)
    ap.add_argument("--interval", type=float, default=30.0)
    ap.add_argument("--duration", type=float, default=1800.0, help="seconds of soak")
    ap.add_argument("--sample", type=float, default=30.0)
    ap.add_argument("--ramp", type=float, default=200.0)
    ap.add_argument("--drain", type=float, default=300.0)
    ap.add_argument("--api-calls", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="300 boxes at 5 s for 60 s")
    ap.add_argument("--json", default=None, help="write the series and summary here")
    args = ap.parse_args()
    if args.quick:
        args.devices, args.interval, args.duration, args.sample = 300, 5.0, 60.0, 10.0
        args.drain = 60.0
    base = scratch("simpul-bench-city-")
    db = PgDatabase()
    stack = Stack(base, db.url, profile="city")
    series: List[Dict[str, Any]] = []
    api_ms: List[float] = []
    try:
        stack.start_broker()
        stack.start_serve(1)
        stack.start_ingest(1)
        report = base / "report.json"
        health = args.interval * 3
        sim = stack.sim(args.devices, args.interval, args.duration, args.drain, report,
                        ["--ramp", str(args.ramp), "--health-interval", str(health),
                         "--prefix", "city"])
        procs = {"serve": psutil.Process(stack.serves[0].pid),
                 "ingest": psutil.Process(stack.ingests[0].pid),
                 "sim": psutil.Process(sim.pid)}
        broker_pid = int((stack.broker_data / "mosquitto.pid").read_text())
        procs["broker"] = psutil.Process(broker_pid)
        for p in procs.values():
            p.cpu_percent(None)
        t0 = time.monotonic()
        device_ids = [f"city-{n:04d}" for n in range(1, min(args.devices, 100) + 1)]
        with httpx.Client(base_url=stack.url(), timeout=30,
                          headers={"Authorization": f"Bearer {stack.token}"}) as api:
            while sim.p.poll() is None:
                time.sleep(args.sample)
                row: Dict[str, Any] = {"t_s": round(time.monotonic() - t0)}
                for name, p in procs.items():
                    try:
                        row[f"{name}_cpu"] = round(p.cpu_percent(None), 1)
                        row[f"{name}_rss_mb"] = round(p.memory_info().rss / 2**20, 1)
                    except psutil.NoSuchProcess:
                        pass
                row["connected"] = established(stack.port)
                lag, row["stored"] = lag_p99(db.url, args.sample)
                row["lag_p99_s"] = None if lag is None else round(lag, 3)
                calls = []
                for i in range(args.api_calls):
                    for path in ("/api/v1/devices?limit=100",
                                 f"/api/v1/devices/{device_ids[i % len(device_ids)]}"):
                        s = time.perf_counter()
                        api.get(path)
                        calls.append((time.perf_counter() - s) * 1000)
                api_ms += calls
                row["api_p95_ms"] = round(pctl(calls, 0.95), 1)
                series.append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
        check = seq_check(db.url, load_report(report))
        summary = load_report(report)
        pending = summary["pending"]
        ran = sum(1 for b in summary["boxes"].values() if b["next_seq"])
    finally:
        stack.stop()
        db.close()
    warm = [r for r in series if r["t_s"] > args.duration * 0.2 and r["t_s"] <= args.duration]
    lags = [r["lag_p99_s"] for r in warm if r.get("lag_p99_s") is not None]
    result = {"devices": args.devices, "interval_s": args.interval, "duration_s": args.duration,
              "series": series, "seq_check": check, "pending_after_drain": pending,
              "boxes_ran": ran,
              "api_p95_ms": round(pctl(api_ms, 0.95), 1),
              "lag_p99_s_median": round(statistics.median(lags), 2) if lags else None,
              "lag_p99_s_max": round(max(lags), 2) if lags else None}
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    print_markdown(result, args, warm)
    return 0 if check["missing"] == 0 and check["duplicates"] == 0 else 1


def print_markdown(result: Dict[str, Any], args: argparse.Namespace,
                   warm: List[Dict[str, Any]]) -> None:
    def med(key: str) -> str:
        vals = [r[key] for r in warm if r.get(key) is not None]
        return f"{statistics.median(vals):g}" if vals else "n/a"

    c = result["seq_check"]
    print(f"### City soak: {args.devices} boxes, one message each per {args.interval:g} s, "
          f"{args.duration / 60:g} min\n")
    print(f"`PYTHONPATH=. python bench/bench_city.py --devices {args.devices} --interval "
          f"{args.interval:g} --duration {args.duration:g}` ({platform.node()})\n")
    print("| figure | value |\n|---|---|")
    print(f"| boxes that ran (numbered records) of {args.devices} | {result['boxes_ran']} |")
    peak = max((r["connected"] for r in result["series"]), default=0)
    print(f"| most boxes connected at once | {peak} |")
    full = [r["t_s"] for r in result["series"] if r["connected"] >= args.devices]
    span = (full[-1] - full[0] + args.sample) if full else 0
    print(f"| all {args.devices} connected | from t = {full[0] if full else '-'} s, "
          f"{span / 60:.1f} min of samples |")
    print(f"| records expected (by seq) | {c['expected']} |")
    print(f"| stored once | {c['stored']} |")
    print(f"| missing / duplicated | {c['missing']} / {c['duplicates']} |")
    print(f"| left in outboxes after the drain | {result['pending_after_drain']} |")
    print(f"| ingest lag p99 (median of windows / worst window) | "
          f"{result['lag_p99_s_median']} s / {result['lag_p99_s_max']} s |")
    print(f"| API p95 (devices page of 100, one device) | {result['api_p95_ms']} ms |")
    print(f"| serve CPU / RSS (median after warm-up) | {med('serve_cpu')} % / "
          f"{med('serve_rss_mb')} MB |")
    print(f"| ingest worker CPU / RSS | {med('ingest_cpu')} % / {med('ingest_rss_mb')} MB |")
    print(f"| simulator CPU / RSS | {med('sim_cpu')} % / {med('sim_rss_mb')} MB |")
    print(f"| Mosquitto CPU / RSS | {med('broker_cpu')} % / {med('broker_rss_mb')} MB |\n")
    print("Over time (CPU in % of one core):\n")
    print("| t (s) | boxes connected | records stored in window | lag p99 (s) | API p95 (ms) "
          "| serve CPU | serve RSS (MB) | ingest RSS (MB) | sim CPU | sim RSS (MB) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    step = max(1, len(result["series"]) // 20)
    for r in result["series"][::step]:
        print(f"| {r['t_s']} | {r['connected']} | {r['stored']} | {r['lag_p99_s']} | "
              f"{r['api_p95_ms']} | {r.get('serve_cpu')} | {r.get('serve_rss_mb')} | "
              f"{r.get('ingest_rss_mb')} | {r.get('sim_cpu')} | {r.get('sim_rss_mb')} |")
    print()


if __name__ == "__main__":
    sys.exit(main())
