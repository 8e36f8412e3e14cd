"""Registration cost per box: `simpul-field provision batch` (one request per 1,000
boxes, bundle files and labels written) against registering boxes one by one through
`POST /api/v1/devices` (the reference: what the online path and `simpul-sim fleet` do),
on the same broker and fleet in the same run. And the atomic bundle write (fsync, marker,
rename) against writing the same three files plainly.

Each figure is a median over --runs runs; the batch includes process start.

    PYTHONPATH=. python bench/provision.py [--runs 3] [--batch 500] [--single 30]
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import List

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from simpul_field.provision.bundle import (  # noqa: E402
    Bundle,
    bundle_files,
    render_config,
    write_bundle,
)
from testbed.harness import Broker, Fleet, scratch_dir  # noqa: E402


def batch_seconds(fleet: Fleet, token: str, count: int, out: Path) -> float:
    env = dict(os.environ, PYTHONPATH=str(REPO), SIMPUL_FLEET=fleet.url, SIMPUL_TOKEN=token)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "simpul_field.cli", "provision", "batch",
                    "--count", str(count), "--kind", "wifi", "--out", str(out)],
                   env=env, check=True, capture_output=True, timeout=600)
    return time.perf_counter() - t0


def single_seconds(fleet: Fleet, count: int, run: int) -> float:
    t0 = time.perf_counter()
    with fleet.api() as api:
        for i in range(count):
            resp = api.post("/api/v1/devices", json={
                "device_id": f"one-{run}-{i}", "site": "S", "kind": "wifi",
                "district": "D", "lat": 0.0, "lon": 0.0})
            resp.raise_for_status()
    return time.perf_counter() - t0


def plain_write(target: Path, files: dict) -> None:  # type: ignore[type-arg]
    target.mkdir()
    for name, (data, _mode) in files.items():
        (target / name).write_bytes(data)


def write_seconds(base: Path, atomic: bool, repeat: int = 50) -> float:
    bundle = Bundle(device_id="box-bench", kind="wifi", mqtt_url="mqtt://h:1883",
                    password="p" * 32, claim_code="AAAA-BBBB-CCCC")
    files = bundle_files(bundle, render_config(bundle, "/etc/simpul", "/var/lib/simpul",
                                               True), b"-----BEGIN CERTIFICATE-----\n" * 40)
    t0 = time.perf_counter()
    for i in range(repeat):
        target = base / f"t{i}"
        if atomic:
            write_bundle(target, bundle.device_id, files)
        else:
            plain_write(target, files)
    took = (time.perf_counter() - t0) / repeat
    for i in range(repeat):
        shutil.rmtree(base / f"t{i}", ignore_errors=True)
    return took


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--single", type=int, default=30)
    args = ap.parse_args()
    base = scratch_dir("simpul-bench-")
    broker = Broker(base).start()
    fleet = Fleet(base, broker).start()
    try:
        token = fleet.create_token("technician")
        batch: List[float] = []
        single: List[float] = []
        for run in range(args.runs):
            batch.append(batch_seconds(fleet, token, args.batch, base / f"out{run}")
                         / args.batch)
            single.append(single_seconds(fleet, args.single, run) / args.single)
    finally:
        fleet.stop()
        broker.stop()
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        atomic = statistics.median(write_seconds(Path(tmp), True) for _ in range(args.runs))
        plain = statistics.median(write_seconds(Path(tmp), False) for _ in range(args.runs))
    shutil.rmtree(base, ignore_errors=True)
    b, s = statistics.median(batch), statistics.median(single)
    print(f"registration per box: batch of {args.batch} {b * 1000:.2f} ms, one by one "
          f"{s * 1000:.1f} ms, ratio {b / s:.3f}  (median of {args.runs})")
    print(f"bundle write: atomic {atomic * 1000:.2f} ms, plain {plain * 1000:.2f} ms, "
          f"ratio {atomic / plain:.1f}  (/tmp; median of {args.runs} x 50)")


if __name__ == "__main__":
    main()
