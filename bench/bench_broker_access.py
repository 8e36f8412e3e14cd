"""The broker's access plugin at city scale (broker_config/plugin/simpul_acl.c).

1. Registrations: 10,000 boxes through the bulk API (chunks of 1,000) against the city
   profile; wall time, broker reloads counted in Mosquitto's log, how long until the
   last box registered can log in, and the size of the plugin's data file.
2. The hot path: one box publishes QoS 1 telemetry (mosquitto_pub, 500 in flight) while
   the fleet's account reads it all (mosquitto_sub); messages a second with the plugin,
   beside the same run on the reference, stock Mosquitto with the pattern acl_file
   Simpul used before.

    PYTHONPATH=. python bench/bench_broker_access.py [--runs 3] [--boxes 10000]
        [--messages 20000] [--quick]
"""

import argparse
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Tuple

import httpx
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fleet_api.broker.accounts import FLEET_USER, mosquitto_hash, new_password
from fleet_api.broker.process import prepare
from simulator.fleet import device_specs, register_all
from testbed.harness import port_open, scratch, wait_until
from testbed.ports import free_port
from testbed.stack import Stack

# What broker_config/acl said before the plugin: the reference for the hot path.
REFERENCE_ACL = f"""user {FLEET_USER}
topic readwrite simpul/v1/#
pattern write simpul/v1/%u/state
pattern write simpul/v1/%u/telemetry
pattern write simpul/v1/%u/health
pattern write simpul/v1/%u/config/reported
pattern read simpul/v1/%u/config/desired
pattern read simpul/v1/%u/ack
pattern read simpul/v1/%u/cmd/+
pattern write simpul/v1/%u/cmd/+/result
pattern write simpul/v1/%u/claim
"""


def _logs_in(port: int, device_id: str, password: str) -> bool:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=device_id,
                         protocol=mqtt.MQTTv5)
    client.username_pw_set(device_id, password)
    got: Dict[str, object] = {}
    client.on_connect = lambda _c, _u, _f, reason, _p: got.setdefault("reason", reason)
    client.connect("127.0.0.1", port)
    deadline = time.monotonic() + 10
    while "reason" not in got and time.monotonic() < deadline:
        client.loop(0.05)
    client.disconnect()
    return "reason" in got and not got["reason"].is_failure  # type: ignore[attr-defined]


def registrations(boxes: int) -> Dict[str, float]:
    base = scratch("simpul-bench-acl-")
    stack = Stack(base, f"sqlite:///{base}/fleet.db")
    data = stack.broker_data
    broker = stack.start_mosquitto()
    try:
        stack.start_serve(1)
        # The plugin's own load at start, then the fleet's start-up sync.
        wait_until(lambda: stack.plugin_reloads() >= 2, 20, what="the start-up sync")
        before = stack.plugin_reloads()
        cpu0 = _cpu_s(broker.pid)
        with httpx.Client(base_url=stack.url(), timeout=300,
                          headers={"Authorization": f"Bearer {stack.token}"}) as api:
            t0 = time.perf_counter()
            regs = register_all(api, device_specs("ra", boxes, random.Random(1)))
            registered = time.perf_counter() - t0
        last = regs[-1]
        wait_until(lambda: _logs_in(stack.port, last.device_id, last.password), 60,
                   what="the last box's login")
        usable = time.perf_counter() - t0
        return {"register_s": registered, "usable_s": usable,
                "reloads": float(stack.plugin_reloads() - before),
                "broker_cpu_s": _cpu_s(broker.pid) - cpu0,
                "data_kb": (data / "access.data").stat().st_size / 1024}
    finally:
        stack.stop()
        broker.terminate()
        broker.wait(10)


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100.0


def _reference_conf(conf: Path, data: Path) -> Path:
    """The same rendered config with stock Mosquitto's acl_file in place of the plugin, as
    Simpul ran before: one password file and one ACL for all listeners."""
    (data / "acl.reference").write_text(REFERENCE_ACL)
    kept = [ln for ln in conf.read_text().splitlines()
            if not ln.startswith(("plugin", "password_file", "allow_anonymous"))]
    text = "\n".join(kept).replace(
        "per_listener_settings true",
        f"per_listener_settings false\nallow_anonymous false\npassword_file {data}/passwd\n"
        f"acl_file {data}/acl.reference")
    ref = data / "reference.conf"
    ref.write_text(text + "\n")
    return ref


def hot_path(messages: int, reference: bool) -> float:
    """Messages a second, box to broker to the fleet's reader, QoS 1 both ways."""
    base = scratch("simpul-bench-acl-hot-")
    data = base / "broker"
    port, fleet_port = free_port(), free_port()
    conf = prepare(str(data), port, fleet_port, "127.0.0.1")
    password = new_password()
    with open(data / "passwd", "a") as f:
        f.write(f"hot-box:{mosquitto_hash(password)}\n")
    if reference:
        conf = _reference_conf(conf, data)
    broker = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: port_open(port) and port_open(fleet_port), 20, what="broker")
        fleet_pw = (data / "fleet.password").read_text().strip()
        # mosquitto_pub and _sub: C clients, so the broker, not a Python client, is what
        # the figure measures.
        lines = base / "messages.txt"
        lines.write_text(("{\"records\": [" + "0" * 300 + "]}\n") * messages)
        reader = subprocess.Popen(
            ["mosquitto_sub", "-p", str(fleet_port), "-u", FLEET_USER, "-P", fleet_pw, "-i",
             "simpul_bench_reader", "-V", "mqttv5", "-q", "1", "-t", "simpul/v1/+/telemetry",
             "-C", str(messages)], stdout=subprocess.DEVNULL)
        time.sleep(0.5)
        t0 = time.perf_counter()
        with open(lines, "rb") as stdin:
            subprocess.run(["mosquitto_pub", "-p", str(port), "-u", "hot-box", "-P", password,
                            "-V", "mqttv5", "-q", "1", "-M", "500", "-t",
                            "simpul/v1/hot-box/telemetry", "-l"], stdin=stdin, check=True,
                           timeout=120)
        reader.wait(120)
        return messages / (time.perf_counter() - t0)
    finally:
        broker.terminate()
        broker.wait(10)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--boxes", type=int, default=10_000)
    ap.add_argument("--messages", type=int, default=20_000)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.runs, args.boxes, args.messages = 1, 2000, min(args.messages, 5000)
    regs = [registrations(args.boxes) for _ in range(args.runs)]
    rates: List[Tuple[float, float]] = []
    for _ in range(args.runs):  # interleaved, so both see the same machine
        rates.append((hot_path(args.messages, False), hot_path(args.messages, True)))

    def med(key: str) -> float:
        return statistics.median(r[key] for r in regs)

    plugin = statistics.median(r[0] for r in rates)
    ref = statistics.median(r[1] for r in rates)
    print(f"## Broker access plugin ({args.runs} runs, medians)\n")
    print(f"`PYTHONPATH=. python bench/bench_broker_access.py --runs {args.runs} --boxes "
          f"{args.boxes} --messages {args.messages}`\n")
    print("| what | figure |\n|---|---|")
    print(f"| {args.boxes:,} registrations (bulk, chunks of 1,000) | {med('register_s'):.1f} s |")
    print(f"| until the last box registered can log in | {med('usable_s'):.1f} s |")
    print(f"| broker reloads for them | {med('reloads'):.0f} |")
    print(f"| broker CPU for those reloads | {med('broker_cpu_s'):.2f} s |")
    print(f"| plugin data file | {med('data_kb'):.0f} KiB |")
    print(f"| box → broker → fleet, QoS 1, plugin | {plugin:,.0f} msg/s |")
    print(f"| the same, stock Mosquitto with the old acl_file (reference) | {ref:,.0f} msg/s |")
    print(f"| ratio plugin / reference | {plugin / ref:.2f} |")
    print("\nPer run (register s, usable s, reloads):",
          ", ".join(f"({r['register_s']:.1f}, {r['usable_s']:.1f}, {r['reloads']:.0f})"
                    for r in regs))
    print("Per run (plugin, reference msg/s):",
          ", ".join(f"({a:,.0f}, {b:,.0f})" for a, b in rates))
    return 0


if __name__ == "__main__":
    sys.exit(main())
