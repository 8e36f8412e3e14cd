"""Tier accuracy: measured iperf3 goodput / tier, for 100 and 300 Mbit/s, both ways.

    sudo PYTHONPATH=. python bench/bench_tier.py [--runs 5] [--seconds 3]

Builds the test hotspot in network namespaces (testbed/hotspot.py), then for each
tier and direction takes the median of several short iperf3 runs through:
  - the Simpul shaper (HTB tree + IFB for upload), and
  - a reference: one plain `tc qdisc tbf` at the same rate on the same interface
    (download only; TBF is the kernel's simplest shaper),
and prints medians, measured/tier ratios, the unshaped veth capacity, the time a tier
change takes (apply 100 <-> 300, with verification) and iperf3's CPU figures.
HTB counts Ethernet frames, so ~95.6 % (1448/1514) is the ideal TCP goodput ratio.
"""

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.shaper import Shaper, Tier
from testbed.hotspot import Hotspot, finish

CLIENT = "10.42.0.17"
PORT = 5201
IDEAL = 1448 / 1514


def run(hs: Hotspot, seconds: float, reverse: bool) -> Dict[str, float]:
    data = finish(hs.iperf(CLIENT, PORT, seconds, reverse))
    cpu = data["end"].get("cpu_utilization_percent", {})
    return {"mbps": data["end"]["sum_received"]["bits_per_second"] / 1e6,
            "cpu_host": cpu.get("host_total", 0.0), "cpu_remote": cpu.get("remote_total", 0.0)}


def median_of(hs: Hotspot, runs: int, seconds: float, reverse: bool) -> Dict[str, float]:
    samples = [run(hs, seconds, reverse) for _ in range(runs)]
    mbps = [s["mbps"] for s in samples]
    return {"median": statistics.median(mbps), "min": min(mbps), "max": max(mbps),
            "cpu": statistics.median(max(s["cpu_host"], s["cpu_remote"]) for s in samples)}


def tbf(hs: Hotspot, mbps: float) -> None:
    # burst: a few ms at the rate, as HTB effectively gets; latency bounds the queue.
    burst = max(15140, int(mbps * 1e6 / 8 * 0.002))
    subprocess.run(["tc", "-n", hs.box, "qdisc", "replace", "dev", "hs0", "root", "tbf",
                    "rate", f"{int(mbps * 1000)}kbit", "burst", str(burst), "latency", "50ms"],
                   check=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=3)
    args = ap.parse_args()
    with open("/proc/loadavg", encoding="ascii") as fh:
        print(f"load average at start: {fh.read().split()[0]}")
    hs = Hotspot([17])
    rows: List[str] = []
    try:
        hs.server(PORT)
        raw = median_of(hs, 3, args.seconds, reverse=True)
        print(f"unshaped veth download: median {raw['median']:.0f} Mbit/s "
              f"(iperf3 CPU {raw['cpu']:.0f} %)")
        shaper = Shaper("hs0", netns=hs.box)
        for mbps in (100, 300):
            result = shaper.apply(Tier(mbps, mbps))
            assert result.verified, result.problems
            for reverse, way in ((True, "down"), (False, "up")):
                m = median_of(hs, args.runs, args.seconds, reverse)
                rows.append(f"| simpul HTB | {mbps} | {way} | {m['median']:.1f} | "
                            f"{m['min']:.1f}-{m['max']:.1f} | {m['median'] / mbps:.3f} | "
                            f"{m['cpu']:.0f} |")
                print(rows[-1], flush=True)
        shaper.remove()
        for mbps in (100, 300):
            tbf(hs, mbps)
            m = median_of(hs, args.runs, args.seconds, reverse=True)
            rows.append(f"| reference tbf | {mbps} | down | {m['median']:.1f} | "
                        f"{m['min']:.1f}-{m['max']:.1f} | {m['median'] / mbps:.3f} | "
                        f"{m['cpu']:.0f} |")
            print(rows[-1], flush=True)
        subprocess.run(["tc", "-n", hs.box, "qdisc", "del", "dev", "hs0", "root"], check=True)
        shaper.apply(Tier(100, 100))
        changes = []
        for i in range(10):
            t0 = time.perf_counter()
            assert shaper.apply(Tier(300 if i % 2 == 0 else 100, 300)).verified
            changes.append((time.perf_counter() - t0) * 1000)
        fresh = []
        for _ in range(5):
            shaper.remove()
            t0 = time.perf_counter()
            assert shaper.apply(Tier(100, 100, 10), [f"10.42.0.{h}" for h in range(20, 70)]) \
                .verified
            fresh.append((time.perf_counter() - t0) * 1000)
    finally:
        hs.close()
    print()
    print("| shaper | tier Mbit/s | direction | median Mbit/s | range | measured/tier | "
          "iperf3 CPU % |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    print(f"\nunshaped veth download: median {raw['median']:.0f} Mbit/s (n=3, iperf3 CPU "
          f"{raw['cpu']:.0f} %)")
    print(f"ideal TCP goodput ratio through an L2 shaper: {IDEAL:.3f}")
    print(f"tier change 100<->300 incl. read-back verify: median {statistics.median(changes):.0f} "
          f"ms (n={len(changes)})")
    print(f"fresh apply with 50 per-client caps incl. verify: median "
          f"{statistics.median(fresh):.0f} ms (n={len(fresh)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
