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
        [--python39]

--python39 runs the agent with the box's interpreter instead of this one: Debian
bullseye's python3.9 (Raspberry Pi OS Bullseye's), in the chroot of scripts/py39-chroot.sh,
against the same broker, fleet and sensor ptys. Its config sits under the repository (the
chroot sees it read-only at /repo) and its data in the chroot's own /tmp. Start-up is
then timed from the moment the chroot's python process exists, so the chroot's own setup
(mounts, venv check) is left out.
"""

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Dict, List

import httpx
import paho.mqtt.client as mqtt
import psutil
from paho.mqtt.enums import CallbackAPIVersion

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fleet_api.broker.accounts import FLEET_USER
from testbed.harness import scratch, wait_until
from testbed.stack import REPO, Proc, Stack, env

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
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"simpul_bench-agent-{os.getpid()}-"
                    f"{time.monotonic_ns()}", protocol=mqtt.MQTTv5)
    c.username_pw_set(FLEET_USER, password)
    def got(_c: object, _u: object, m: mqtt.MQTTMessage) -> None:
        seen.last = m.payload  # type: ignore[attr-defined]
        seen.set()

    c.on_message = got
    c.connect("127.0.0.1", port)
    c.subscribe(topic, qos=0)
    c.loop_start()
    time.sleep(0.3)
    seen.client = c  # type: ignore[attr-defined]
    return seen


def chroot_agent(proc: "subprocess.Popen[bytes]", timeout: float = 600) -> psutil.Process:
    """The chroot's python running the agent, once it exists (the first run builds the
    rootfs and the venv)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"the py39 chroot exited with {proc.returncode}")
        for child in psutil.Process(proc.pid).children(recursive=True):
            try:
                if "agent.cli" in child.cmdline() and "python" in child.name():
                    return child
            except psutil.NoSuchProcess:
                continue
        time.sleep(0.01)
    raise RuntimeError("the py39 chroot did not start the agent")


def one_run(stack: Stack, base: Path, n: int, mqtt_info: dict, ports: Dict[str, Path],  # type: ignore[type-arg]
            leases: Path, capture: bool, seconds: float, py39: bool = False
            ) -> Dict[str, float]:
    box = base / f"run-{n}"
    box.mkdir()
    secret = box / "mqtt.password"
    secret.write_text(mqtt_info["password"] + "\n")
    secret.chmod(0o600)
    config = box / "agent.toml"
    data = f"/tmp/agent-bench-{n}" if py39 else str(box / "data")
    seen_as = (lambda path: Path("/repo") / Path(path).relative_to(REPO)) if py39 else Path
    config.write_text(
        f'[device]\ndevice_id = "agent-bench"\ndata_dir = "{data}"\n\n'
        f'[broker]\nurl = "{mqtt_info["url"]}"\npassword_file = "{seen_as(secret)}"\n\n'
        "[publish]\nsample_interval_s = 1\nhealth_interval_s = 1\n\n"
        + collectors(ports, seen_as(leases), capture))
    password = (stack.broker_data / "fleet.password").read_text().strip()
    seen = first_message(stack.fleet_port, password, "simpul/v1/agent-bench/telemetry")
    argv = ["-m", "agent.cli", "run", "--config", str(seen_as(config))]
    if py39:
        argv = ["bash", str(REPO / "scripts" / "py39-chroot.sh"), "--exec", "python", *argv]
    else:
        argv = [sys.executable, *argv]
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, stdout=open(box / "agent.log", "ab"),
                            stderr=subprocess.STDOUT, env=env(), start_new_session=True)
    try:
        p = chroot_agent(proc) if py39 else psutil.Process(proc.pid)
        if py39:
            t0 = time.monotonic()
        if not seen.wait(30):
            log = (box / "agent.log").read_text()[-800:]
            raise RuntimeError(f"no telemetry within 30 s: {log}")
        startup = time.monotonic() - t0
        time.sleep(min(10.0, seconds / 4))  # settle: imports done, sensors open
        cpu0, w0 = sum(p.cpu_times()[:2]), time.monotonic()
        peak = 0
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            peak = max(peak, p.memory_info().rss)
            time.sleep(1)
        cpu = (sum(p.cpu_times()[:2]) - cpu0) / (time.monotonic() - w0) * 100
        rss = p.memory_info().rss
        # The figure counts only if the agent really read its three sensors.
        sources = json.loads(seen.last)["records"][-1]["sources"]  # type: ignore[attr-defined]
        dead = [s for s in SENSORS.values() if sources.get(s, {}).get("state") != "ok"]
        if dead:
            raise RuntimeError(f"sensors not read: {dead}: {sources}")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the chroot's python too, with --python39
        proc.wait(30)
        seen.client.loop_stop()  # type: ignore[attr-defined]
        seen.client.disconnect()  # type: ignore[attr-defined]
    return {"startup_s": startup, "rss_mb": rss / 2**20, "peak_mb": max(peak, rss) / 2**20,
            "cpu_pct": cpu}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--quick", action="store_true", help="1 run of 20 s each")
    ap.add_argument("--python39", action="store_true",
                    help="run the agent with bullseye's python3.9 (scripts/py39-chroot.sh)")
    args = ap.parse_args()
    if args.quick:
        args.runs, args.seconds = 1, 20.0
    # With --python39 the chroot must see the config: a scratch dir under the repository.
    base = Path(tempfile.mkdtemp(prefix=".bench-agent-py39-", dir=REPO)) if args.python39 \
        else scratch("simpul-bench-agent-")
    base.chmod(0o755)  # the broker runs as the mosquitto user
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
        wait_until(lambda: all(p.exists() for p in ports.values()), 20, what="the sensor ptys")
        if args.python39:  # the chroot has the host's /dev, not the links to it
            ports = {d: Path(os.path.realpath(link)) for d, link in ports.items()}
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
                                              capture, args.seconds, args.python39))
    finally:
        for p in sims:
            p.stop()
        stack.stop()
        if args.python39:
            shutil.rmtree(base, ignore_errors=True)
    print(f"### Agent footprint ({args.runs} runs of {args.seconds:g} s, load "
          f"{os.getloadavg()[0]:.2f})\n")
    print(f"`PYTHONPATH=. python bench/bench_agent.py --runs {args.runs} --seconds "
          f"{args.seconds:g}{' --python39' if args.python39 else ''}` (as root: live "
          "capture needs CAP_NET_RAW)\n")
    print("Three simulated sensors on ptys, dnsmasq leases + neighbour table, box health, "
          "1 Hz sampling and publishing, "
          + ("Debian bullseye's Python 3.9 (the box's), in the chroot.\n" if args.python39
             else f"Python {sys.version.split()[0]}.\n"))
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
