"""Agent soak: one `simpul-agent run` for an hour with three simulated serial sensors,
client counting and box health at 1 Hz, against Mosquitto and the fleet, with faults
injected in turn every --fault-every seconds:

- broker restart (stopped and started again at once);
- broker outage of 60 s (the outbox holds the records, then replays them);
- sensor unplugged for 30 s (its simulator stopped: the pty disappears, then returns).

Measured: the agent's RSS every 10 s; the figure is the growth from the 5-minute mark to
the end (and to the highest sample after it). Goal: under 5 %. At the end the faults stop,
the outbox drains, and every telemetry and health seq the agent numbered must be in the
fleet's database exactly once.

    PYTHONPATH=. python bench/bench_agent_soak.py [--minutes 60] [--fault-every 300]
"""

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Tuple

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_agent import SENSORS, collectors
from testbed.harness import scratch, wait_until
from testbed.stack import Proc, Stack, env

DEVICE = "agent-soak"


def sensor(base: Path, driver: str, link: Path) -> Proc:
    return Proc(["simulator.cli", "sensor", "--driver", driver, "--link", str(link),
                 "--interval", "1"], base / f"sensor-{driver}.log")


def stored(api: httpx.Client, stream: str) -> List[Tuple[str, int]]:
    resp = api.get(f"/api/v1/devices/{DEVICE}/telemetry",
                   params={"stream": stream, "limit": 10000, "by": "received_at"})
    resp.raise_for_status()
    return [(r["epoch"], r["seq"]) for r in resp.json()["data"]]


def agent_env() -> Dict[str, str]:
    """SIMPUL_AGENT_TRACEMALLOC=N traces the agent's allocations (N frames) and nothing
    else's; `kill -USR2 <agent>` then logs what grew (agent/memory.py).
    SIMPUL_AGENT_PYTHONMALLOC sets the agent's PYTHONMALLOC (e.g. malloc)."""
    out = env()
    frames = os.environ.get("SIMPUL_AGENT_TRACEMALLOC")
    if frames:
        out["PYTHONTRACEMALLOC"] = frames
    allocator = os.environ.get("SIMPUL_AGENT_PYTHONMALLOC")
    if allocator:
        out["PYTHONMALLOC"] = allocator
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--fault-every", type=float, default=300.0)
    args = ap.parse_args()
    base = scratch("simpul-bench-soak-")
    stack = Stack(base, f"sqlite:///{base}/fleet.db")
    sims: Dict[str, Proc] = {}
    samples: List[Tuple[float, float]] = []
    faults: List[str] = []
    agent = None
    try:
        stack.start_broker()
        stack.start_serve(1)
        ports = {d: base / f"pty-{d}" for d in SENSORS}
        for driver, link in ports.items():
            sims[driver] = sensor(base, driver, link)
        wait_until(lambda: all(p.exists() for p in ports.values()), 20, what="the sensor ptys")
        leases = base / "dnsmasq.leases"
        leases.write_text("".join(f"{1900000000 + i} 02:00:00:00:00:{i:02x} 10.42.0.{i + 10} "
                                  f"phone-{i} *\n" for i in range(20)))
        api = httpx.Client(base_url=stack.url(), timeout=60,
                           headers={"Authorization": f"Bearer {stack.token}"})
        mqtt = api.post("/api/v1/devices", json={
            "device_id": DEVICE, "site": "soak", "kind": "wifi", "district": "Kota Barat",
            "lat": -6.2, "lon": 106.8}).json()["mqtt"]
        box = base / "box"
        box.mkdir()
        (box / "mqtt.password").write_text(mqtt["password"] + "\n")
        (box / "mqtt.password").chmod(0o600)
        config = box / "agent.toml"
        config.write_text(
            f'[device]\ndevice_id = "{DEVICE}"\ndata_dir = "{box / "data"}"\n\n'
            f'[broker]\nurl = "{mqtt["url"]}"\npassword_file = "{box / "mqtt.password"}"\n\n'
            "[publish]\nsample_interval_s = 1\nhealth_interval_s = 1\n\n"
            + collectors(ports, leases, capture=False))
        agent = subprocess.Popen([sys.executable, "-m", "agent.cli", "run", "--config",
                                  str(config)], stdout=open(box / "agent.log", "ab"),
                                 stderr=subprocess.STDOUT, env=agent_env(), start_new_session=True)
        proc = psutil.Process(agent.pid)
        t0 = time.monotonic()
        end = t0 + args.minutes * 60
        next_fault = t0 + args.fault_every
        kinds = ["broker restart", "broker outage 60 s", "sensor unplugged 30 s"]
        while time.monotonic() < end:
            samples.append((time.monotonic() - t0, proc.memory_info().rss / 2**20))
            if agent.poll() is not None:
                raise RuntimeError(f"the agent exited with {agent.returncode}")
            if time.monotonic() >= next_fault and time.monotonic() < end - 120:
                kind = kinds[len(faults) % len(kinds)]
                faults.append(f"{time.monotonic() - t0:.0f} s: {kind}")
                print(faults[-1], flush=True)
                assert stack.broker is not None
                if kind.startswith("broker"):
                    stack.broker.stop()
                    if "outage" in kind:
                        time.sleep(60)
                    stack.start_broker()
                else:
                    driver = list(SENSORS)[len(faults) % len(SENSORS)]
                    sims[driver].stop()
                    time.sleep(30)
                    sims[driver] = sensor(base, driver, ports[driver])
                next_fault += args.fault_every
            time.sleep(10)
        # Faults over: stop sampling, let the outbox drain (nothing left unconfirmed),
        # then count what the fleet stored against what the agent numbered.
        from agent.outbox import Outbox

        agent.terminate()
        agent.wait(30)
        outbox = Outbox(str(box / "data" / "outbox.sqlite"))
        numbered = outbox.next_seqs()
        left = outbox.depth()  # every record the box still holds, sent or not
        outbox.close()
        counts = {s: stored(api, s) for s in ("telemetry", "health")}
    finally:
        if agent is not None and agent.poll() is None:
            agent.kill()
        for p in sims.values():
            p.stop()
        stack.stop()
    at5 = next(r for t, r in samples if t >= 300)
    after = [r for t, r in samples if t >= 300]
    growth_end = (samples[-1][1] - at5) / at5 * 100
    growth_max = (max(after) - at5) / at5 * 100
    print(f"\n### Agent soak ({args.minutes:g} min, a fault every {args.fault_every:g} s, "
          f"load {os.getloadavg()[0]:.2f})\n")
    print(f"`PYTHONPATH=. python bench/bench_agent_soak.py --minutes {args.minutes:g} "
          f"--fault-every {args.fault_every:g}`\n")
    print("| RSS at 5 min (MB) | RSS at the end (MB) | highest after 5 min (MB) | growth to end "
          "| growth to highest | goal |")
    print("|---|---|---|---|---|---|")
    ok = growth_max < 5
    print(f"| {at5:.1f} | {samples[-1][1]:.1f} | {max(after):.1f} | {growth_end:+.1f} % | "
          f"{growth_max:+.1f} % | < 5 %: {'met' if ok else 'NOT met'} |\n")
    for stream, rows in counts.items():
        seqs = [s for _, s in rows]
        unique = len(set(seqs)) == len(seqs)
        print(f"- {stream}: {len(rows)} records stored of {numbered.get(stream, 0)} numbered, "
              f"{len({e for e, _ in rows})} epoch(s), "
              f"{'no duplicates' if unique else 'DUPLICATES'}")
    # A seq the fleet lacks must still be in the box's outbox (sent at its next start).
    missing = sum(numbered.get(s, 0) - len({q for _, q in rows}) for s, rows in counts.items())
    verdict = "nothing lost" if missing <= left else "LOSS"
    print(f"- missing from the fleet: {missing}; still held by the box's outbox: {left}: "
          f"{verdict}")
    print(f"- faults: {'; '.join(faults)}")
    print("\nRSS samples (every 10 s, MB): "
          + " ".join(f"{r:.1f}" for _, r in samples[::6]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
