"""Command round trip: `POST /api/v1/devices/{id}/commands` (ping) until the box's result
is stored and `GET .../commands/{command_id}` says succeeded, against a real
`simpul-agent run` on the same broker; beside it, the raw MQTT request/response round
trip between two paho clients on that broker (QoS 1 both ways), the floor any command
path stands on. Goal: fleet round trip p95 under 250 ms.

    PYTHONPATH=. python bench/bench_command.py [--runs 50] [--db sqlite|postgresql] [--quick]
"""

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import List

import httpx
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fleet_api.broker.accounts import FLEET_USER
from simpul_wire.transport import no_delay
from testbed.harness import scratch, wait_until
from testbed.stack import PgDatabase, Stack, env


def pctl(values: List[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def start_agent(base: Path, device_id: str, mqtt_info: dict) -> subprocess.Popen:  # type: ignore[type-arg]
    box = base / device_id
    box.mkdir()
    secret = box / "mqtt.password"
    secret.write_text(mqtt_info["password"] + "\n")
    secret.chmod(0o600)
    config = box / "agent.toml"
    config.write_text(
        f'[device]\ndevice_id = "{device_id}"\ndata_dir = "{box / "data"}"\n\n'
        f'[broker]\nurl = "{mqtt_info["url"]}"\npassword_file = "{secret}"\n\n'
        '[publish]\nsample_interval_s = 10\nhealth_interval_s = 30\n\n'
        '[[collectors]]\ntype = "synthetic"\nname = "air"\nvalues = { pm2_5 = 10.0 }\n')
    return subprocess.Popen([sys.executable, "-m", "agent.cli", "run", "--config", str(config)],
                            stdout=open(base / "agent.log", "ab"), stderr=subprocess.STDOUT,
                            env=env(), start_new_session=True)


def fleet_round_trips(api: httpx.Client, device_id: str, runs: int, port: int) -> List[float]:
    """`ping` as a TCP probe of the broker's port: a real built-in, run in its worker."""
    out = []
    body = {"name": "ping", "args": {"host": "127.0.0.1", "port": port, "timeout_s": 2}}
    for _ in range(runs):
        t0 = time.perf_counter()
        resp = api.post(f"/api/v1/devices/{device_id}/commands", json=body)
        resp.raise_for_status()
        cid = resp.json()["command_id"]
        while True:
            status = api.get(f"/api/v1/devices/{device_id}/commands/{cid}").json()["status"]
            if status in ("succeeded", "failed", "expired"):
                break
            time.sleep(0.002)
        out.append((time.perf_counter() - t0) * 1000)
        if status != "succeeded":
            raise RuntimeError(f"command {cid} ended {status}")
    return out


def mqtt_round_trips(port: int, password: str, runs: int, nodelay: bool) -> List[float]:
    """Requester -> broker -> responder -> broker -> requester, QoS 1 each way; with
    paho's default sockets (Nagle on) or TCP_NODELAY, as the agent and fleet now set."""
    got = threading.Event()

    def client(name: str) -> mqtt.Client:
        c = mqtt.Client(CallbackAPIVersion.VERSION2,
                        client_id=f"simpul_bench-{name}-{nodelay}-{os.getpid()}",
                        protocol=mqtt.MQTTv5)
        c.username_pw_set(FLEET_USER, password)
        if nodelay:
            c.on_socket_open = lambda _c, _u, sock: no_delay(sock)
        c.connect("127.0.0.1", port)
        c.loop_start()
        return c

    responder, requester = client("resp"), client("req")
    def echo(c: mqtt.Client, _u: object, m: mqtt.MQTTMessage) -> None:
        c.publish("simpul/v1/bench/res", m.payload, qos=1)

    responder.on_message = echo
    requester.on_message = lambda _c, _u, _m: got.set()
    responder.subscribe("simpul/v1/bench/req", qos=1)
    requester.subscribe("simpul/v1/bench/res", qos=1)
    time.sleep(0.5)
    out = []
    try:
        for _ in range(runs):
            got.clear()
            t0 = time.perf_counter()
            requester.publish("simpul/v1/bench/req", b'{"name":"ping"}', qos=1)
            if not got.wait(5):
                raise RuntimeError("no MQTT response within 5 s")
            out.append((time.perf_counter() - t0) * 1000)
    finally:
        for c in (responder, requester):
            c.loop_stop()
            c.disconnect()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--db", choices=["sqlite", "postgresql"], default="postgresql")
    ap.add_argument("--quick", action="store_true", help="20 runs")
    args = ap.parse_args()
    runs = 20 if args.quick else args.runs
    base = scratch("simpul-bench-cmd-")
    db = PgDatabase("simpul_bench_cmd") if args.db == "postgresql" else None
    stack = Stack(base, db.url if db else f"sqlite:///{base}/fleet.db")
    agent = None
    try:
        stack.start_broker()
        stack.start_serve(1)
        with httpx.Client(base_url=stack.url(), timeout=30,
                          headers={"Authorization": f"Bearer {stack.token}"}) as api:
            body = {"device_id": "cmd-bench", "site": "bench", "kind": "wifi",
                    "district": "Kota Barat", "lat": -6.2, "lon": 106.8}
            reg = api.post("/api/v1/devices", json=body).json()
            agent = start_agent(base, "cmd-bench", reg["mqtt"])
            wait_until(lambda: api.get("/api/v1/devices/cmd-bench").json()["online"], 60,
                       what="the agent online")
            fleet_round_trips(api, "cmd-bench", 3, stack.port)  # warm-up
            fleet = fleet_round_trips(api, "cmd-bench", runs, stack.port)
        password = (stack.broker_data / "fleet.password").read_text().strip()
        raw = mqtt_round_trips(stack.fleet_port, password, runs, nodelay=True)
        nagle = mqtt_round_trips(stack.fleet_port, password, runs, nodelay=False)
    finally:
        if agent is not None:
            agent.terminate()
            agent.wait(10)
        stack.stop()
        if db is not None:
            db.close()
    load = os.getloadavg()[0]
    print(f"### Command round trip ({runs} runs, fleet on {args.db}, load {load:.2f})\n")
    print(f"`PYTHONPATH=. python bench/bench_command.py --runs {runs} --db {args.db}`\n")
    print("| path | median ms | p95 ms | max ms |\n|---|---|---|---|")
    for name, vals in (("fleet API POST `ping` (TCP probe) -> box -> result stored "
                        "(GET polled every 2 ms)", fleet),
                       ("raw MQTT request/response, QoS 1, same broker, TCP_NODELAY", raw),
                       ("the same with paho's default sockets (Nagle on)", nagle)):
        print(f"| {name} | {statistics.median(vals):.1f} | {pctl(vals, 0.95):.1f} | "
              f"{max(vals):.1f} |")
    p95 = pctl(fleet, 0.95)
    print(f"\nGoal p95 < 250 ms: {'met' if p95 < 250 else 'NOT met'} ({p95:.1f} ms); "
          f"fleet/raw median ratio {statistics.median(fleet) / statistics.median(raw):.1f}.\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
