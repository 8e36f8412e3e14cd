"""Agent footprint: a real `simpul-agent run` with three simulated serial sensors
(`simpul-sim sensor` on pseudo-terminals: PMS5003, SDS011, the sensor-board bridge),
client counting (dnsmasq leases and the neighbour table) and box health, sampling and
publishing at 1 Hz, against Mosquitto and the fleet (which confirms every record).

Measured per run: start-up (process spawn to its first telemetry message seen at the
broker), RSS after --seconds (and the peak), and CPU over the steady part (% of one
core). Without capture, and with live capture (`clients_capture` on the loopback
interface, AF_PACKET + BPF). Medians of --runs runs.
Goals: RSS <= 40 MB without capture, <= 60 MB with it; CPU <= 2 %; start-up <= 1.5 s.

    PYTHONPATH=. python bench/bench_agent.py [--runs 3] [--seconds 60] [--quick]
"""

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Dict, List

import httpx
import paho.mqtt.client as mqtt
import psutil
from paho.mqtt.enums import CallbackAPIVersion

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.stack import Proc, Stack, env, scratch, wait_for

SENSORS = {"pms5003": "air", "sds011": "air2", "bridge": "board"}


def collectors(ports: Dict[str, Path], leases: Path, capture: bool) -> str:
    out = [f'[[collectors]]\ntype = "pms5003"\nname = "air"\nport = "{ports["pms5003"]}"\n',
           f'[[collectors]]\ntype = "sds011"\nname = "air2"\nport = "{ports["sds011"]}"\n',
           f'[[collectors]]\ntype = "bridge"\nname = "board"\nport = "{ports["bridge"]}"\n'
           "report_interval_ms = 1000\n",
           f'[[collectors]]\ntype = "clients_dnsmasq"\nname = "leases"\n'
           f'leases_path = "{leases}"\n',
           '[[collectors]]\ntype = "clients_neigh"\nname = "neigh"\nsource = "proc"\n',
           '[[collectors]]\ntype = "health"\ndisk_path = "/"\n']
    if capture:
        out.append('[[collectors]]\ntype = "clients_capture"\nname = "lan"\n'
                   'interface = "lo"\n')
    return "\n".join(out)


def first_message(port: int, password: str, topic: str) -> threading.Event:
    seen = threading.Event()
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-agent-{os.getpid()}-"
                    f"{time.monotonic_ns()}", protocol=mqtt.MQTTv5)
    c.username_pw_set("simpul-fleet", password)
    c.on_message = lambda _c, _u, _m: seen.set()
    c.connect("127.0.0.1", port)
    c.subscribe(topic, qos=0)
    c.loop_start()
    time.sleep(0.3)
    seen.client = c  # type: ignore[attr-defined]
    return seen


def one_run(stack: Stack, base: Path, n: int, mqtt_info: dict, ports: Dict[str, Path],  # type: ignore[type-arg]
            leases: Path, capture: bool, seconds: float) -> Dict[str, float]:
    box = base / f"run-{n}"
    box.mkdir()
    secret = box / "mqtt.password"
    secret.write_text(mqtt_info["password"] + "\n")
    secret.chmod(0o600)
    config = box / "agent.toml"
    config.write_text(
        f'[device]\ndevice_id = "agent-bench"\ndata_dir = "{box / "data"}"\n\n'
        f'[broker]\nurl = "{mqtt_info["url"]}"\npassword_file = "{secret}"\n\n'
        "[publish]\nsample_interval_s = 1\nhealth_interval_s = 1\n\n"
        + collectors(ports, leases, capture))
    password = (stack.broker_data / "fleet.password").read_text().strip()
    seen = first_message(stack.fleet_port, password, "simpul/v1/agent-bench/telemetry")
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "agent.cli", "run", "--config", str(config)],
                            stdout=open(box / "agent.log", "ab"), stderr=subprocess.STDOUT,
                            env=env(), start_new_session=True)
    try:
        if not seen.wait(30):
            log = (box / "agent.log").read_text()[-800:]
            raise RuntimeError(f"no telemetry within 30 s: {log}")
        startup = time.monotonic() - t0
        p = psutil.Process(proc.pid)
        time.sleep(min(10.0, seconds / 4))  # settle: imports done, sensors open
        cpu0, w0 = sum(p.cpu_times()[:2]), time.monotonic()
        peak = 0
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            peak = max(peak, p.memory_info().rss)
            time.sleep(1)
        cpu = (sum(p.cpu_times()[:2]) - cpu0) / (time.monotonic() - w0) * 100
        rss = p.memory_info().rss
    finally:
        proc.terminate()
        proc.wait(10)
        seen.client.loop_stop()  # type: ignore[attr-defined]
        seen.client.disconnect()  # type: ignore[attr-defined]
    return {"startup_s": startup, "rss_mb": rss / 2**20, "peak_mb": max(peak, rss) / 2**20,
            "cpu_pct": cpu}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--quick", action="store_true", help="1 run of 20 s each")
    args = ap.parse_args()
    if args.quick:
        args.runs, args.seconds = 1, 20.0
    base = scratch("simpul-bench-agent-")
    stack = Stack(base, f"sqlite:///{base}/fleet.db")
    sims: List[Proc] = []
    results: Dict[str, List[Dict[str, float]]] = {"without capture": [], "with capture": []}
    try:
        stack.start_broker()
        stack.start_serve(1)
        ports = {d: base / f"pty-{d}" for d in SENSORS}
        for driver, link in ports.items():
            sims.append(Proc(["simulator.cli", "sensor", "--driver", driver, "--link", str(link),
                              "--interval", "1"], base / f"sensor-{driver}.log"))
        wait_for(lambda: all(p.exists() for p in ports.values()), 20, "the sensor ptys")
        leases = base / "dnsmasq.leases"
        leases.write_text("".join(f"{1900000000 + i} 02:00:00:00:00:{i:02x} 10.42.0.{i + 10} "
                                  f"phone-{i} *\n" for i in range(20)))
        with httpx.Client(base_url=stack.url(), timeout=30,
                          headers={"Authorization": f"Bearer {stack.token}"}) as api:
            mqtt_info = api.post("/api/v1/devices", json={
                "device_id": "agent-bench", "site": "bench", "kind": "wifi",
                "district": "Kota Barat", "lat": -6.2, "lon": 106.8}).json()["mqtt"]
        n = 0
        for _ in range(args.runs):
            for label, capture in (("without capture", False), ("with capture", True)):
                n += 1
                results[label].append(one_run(stack, base, n, mqtt_info, ports, leases,
                                              capture, args.seconds))
    finally:
        for p in sims:
            p.stop()
        stack.stop()
    print(f"### Agent footprint ({args.runs} runs of {args.seconds:g} s, load "
          f"{os.getloadavg()[0]:.2f})\n")
    print(f"`PYTHONPATH=. python bench/bench_agent.py --runs {args.runs} --seconds "
          f"{args.seconds:g}` (as root: live capture needs CAP_NET_RAW)\n")
    print("Three simulated sensors on ptys, dnsmasq leases + neighbour table, box health, "
          "1 Hz sampling and publishing, Python "
          f"{sys.version.split()[0]}.\n")
    print("| agent | start-up to first publish (s) | RSS (MB) | peak RSS (MB) | CPU % | goals |")
    print("|---|---|---|---|---|---|")
    for label, runs in results.items():
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        cap = 60 if "with" in label and "without" not in label else 40
        ok = (med["rss_mb"] <= cap and med["cpu_pct"] <= 2 and med["startup_s"] <= 1.5)
        print(f"| {label} | {med['startup_s']:.2f} | {med['rss_mb']:.1f} | "
              f"{med['peak_mb']:.1f} | {med['cpu_pct']:.2f} | RSS <= {cap} MB, CPU <= 2 %, "
              f"start-up <= 1.5 s: {'met' if ok else 'NOT met'} |")
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
