"""Client-counting benchmarks. Prints figures; docs/benchmarks/clients.md records a run.

1. Capture-file decoding rate (frames/s) of agent/clients against tshark on the same
   files in the same run: tshark doing the same job (filter the ARP/DHCP or probe-request
   frames and print their addresses), and tshark only counting frames (`-z io,stat,0`).
   scapy's PcapReader over a slice is shown for scale. Medians of --runs runs.
2. --live: CPU of live counting (AF_PACKET + BPF) on a namespace bridge while iperf3
   pushes --mbps of UDP (1400-byte datagrams) from a client to the box, against the
   same socket with an accept-all filter.
3. Start-up time and peak RSS: the collector registry alone, with a live capture
   opened, and with the ARP scan's scapy imports.

    PYTHONPATH=. python bench/bench_clients.py [--runs 5] [--live] [--mbps 300]
"""

import argparse
import functools
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from agent.clients.counter import ClientCounter  # noqa: E402
from agent.clients.files import count_file  # noqa: E402

TSHARK_JOB = {
    "lan": ("arp || dhcp", ["arp.src.hw_mac", "dhcp.hw.mac_addr", "eth.src"]),
    "air": ("wlan.fc.type_subtype == 4 && radiotap.flags.badfcs == 0", ["wlan.sa"]),
}


def median_time(fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def count_once(path: Path) -> None:
    count_file(path, ClientCounter(keep_totals=True))


def tshark(argv: List[str]) -> None:
    subprocess.run(["tshark", *argv], check=True, capture_output=True, timeout=600)


def bench_decode(workdir: Path, runs: int, duration: float, noise: float) -> List[Dict[str, Any]]:
    from simulator.cli import hotspot

    parser = argparse.ArgumentParser()
    hotspot.register(parser.add_subparsers())
    args = parser.parse_args(
        [
            "hotspot",
            "--out",
            str(workdir),
            "--duration",
            str(duration),
            "--noise-rate",
            str(noise),
            "--clients",
            "60",
            "--universal",
            "80",
            "--randomized",
            "60",
        ]
    )
    args.func(args)
    truth = json.loads((workdir / "truth.json").read_text())
    rows = []
    for name in ("lan.pcap", "lan.pcapng", "air.pcap", "air.pcapng"):
        path = workdir / name
        kind = name.split(".")[0]
        counter = ClientCounter(keep_totals=True)
        frames = int(count_file(path, counter)["frames"])
        totals = counter.totals()
        ok = (
            (totals.connected == truth["connected"])
            if kind == "lan"
            else (totals.nearby == truth["nearby"])
        )
        ours = median_time(functools.partial(count_once, path), runs)
        flt, fields = TSHARK_JOB[kind]
        job = ["-r", str(path), "-Y", flt, "-T", "fields", *[a for f in fields for a in ("-e", f)]]
        t_job = median_time(functools.partial(tshark, job), runs)
        t_count = median_time(
            functools.partial(tshark, ["-r", str(path), "-q", "-z", "io,stat,0"]), runs
        )
        rows.append(
            {
                "file": name,
                "frames": frames,
                "mb": round(path.stat().st_size / 1e6, 1),
                "counts_equal_truth": ok,
                "ours_fps": frames / ours,
                "tshark_job_fps": frames / t_job,
                "tshark_count_fps": frames / t_count,
                "ratio_job": t_job / ours,
                "ratio_count": t_count / ours,
            }
        )
    return rows


def bench_scapy(path: Path, limit: int = 20000) -> float:
    from scapy.utils import PcapReader

    t0 = time.perf_counter()
    n = 0
    with PcapReader(str(path)) as reader:
        for _pkt in reader:
            n += 1
            if n >= limit:
                break
    return n / (time.perf_counter() - t0)


LIVE_PROBE = """
import json, resource, sys, time
from agent.clients.counter import ClientCounter
from agent.clients.live import LiveCapture
seconds, mode = float(sys.argv[1]), sys.argv[2]
cap = LiveCapture("br0", ClientCounter(keep_totals=True))
if mode == "accept-all":
    cap.program = [(0x06, 0, 0, 0x40000)]
cap.open()
print("ready", flush=True)
r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
cap.run_for(seconds)
r1, t1 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
print(json.dumps({"cpu_s": cpu, "wall_s": t1 - t0, **cap.stats()}))
"""


def bench_live(mbps: float, seconds: float) -> List[Dict[str, Any]]:
    from simulator.hotspot_netns import SUBNET, NetnsHotspot

    rows = []
    with tempfile.TemporaryDirectory() as tmp, NetnsHotspot(Path(tmp), 2) as net:
        net.lease_all()
        net.ap_popen(
            ["iperf3", "-s", "-B", f"{SUBNET}.1"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(0.5)
        for mode in ("bpf", "accept-all"):
            probe = net.ap_popen(
                ["env", f"PYTHONPATH={REPO}", sys.executable, "-c", LIVE_PROBE, str(seconds), mode],
                stdout=subprocess.PIPE,
                text=True,
            )
            assert probe.stdout is not None
            assert probe.stdout.readline().strip() == "ready"
            iperf = subprocess.run(
                [
                    "ip",
                    "netns",
                    "exec",
                    net.clients[0],
                    "iperf3",
                    "-c",
                    f"{SUBNET}.1",
                    "-u",
                    "-l",
                    "1400",
                    "-b",
                    f"{mbps}M",
                    "-t",
                    str(seconds - 1),
                    "-J",
                ],
                capture_output=True,
                text=True,
                timeout=seconds + 30,
                check=True,
            )
            out, _ = probe.communicate(timeout=seconds + 30)
            result = json.loads(out.strip().splitlines()[-1])
            # UDP datagrams of 1400 bytes: one frame each, as a hotspot's mixed traffic is
            # (TCP over veth would be merged into 64 KB GSO super-frames, flattering us).
            sent = json.loads(iperf.stdout)["end"]["sum"]["bits_per_second"] / 1e6
            rows.append(
                {
                    "filter": mode,
                    "mbps": sent,
                    "cpu_percent": 100 * result["cpu_s"] / result["wall_s"],
                    "frames_to_python": result["frames"],
                    "frames_matched": result["frames_matched"],
                }
            )
    return rows


STARTUP = {
    "python alone": "pass",
    "collector registry": "import agent.collectors.registry",
    "registry + live capture open": (
        "import agent.collectors.registry\n"
        "from agent.clients.counter import ClientCounter\n"
        "from agent.clients.live import LiveCapture\n"
        "LiveCapture('lo', ClientCounter()).open()"
    ),
    "registry + ARP scan imports (scapy)": (
        "import agent.collectors.registry\n"
        "from scapy.layers.l2 import ARP, Ether\nfrom scapy.sendrecv import srp"
    ),
}


def bench_startup(runs: int) -> List[Dict[str, Any]]:
    rows = []
    for label, code in STARTUP.items():
        times, rss = [], []
        # VmHWM: this process's own peak (ru_maxrss would carry the parent's over exec)
        report = "\nprint(open('/proc/self/status').read().split('VmHWM:')[1].split()[0])"
        for _ in range(runs):
            t0 = time.perf_counter()
            done = subprocess.run(
                [sys.executable, "-c", code + report],
                check=True,
                cwd=str(REPO),
                capture_output=True,
                text=True,
                env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
            )
            times.append(time.perf_counter() - t0)
            rss.append(int(done.stdout.split()[-1]))
        rows.append(
            {"case": label, "seconds": statistics.median(times), "max_rss_mb": max(rss) / 1024}
        )
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--duration", type=float, default=1200.0, help="simulated seconds")
    ap.add_argument("--noise-rate", type=float, default=150.0)
    ap.add_argument("--live", action="store_true", help="also the iperf3 CPU benchmark (root)")
    ap.add_argument("--mbps", type=float, default=300.0)
    ap.add_argument("--seconds", type=float, default=15.0)
    args = ap.parse_args()
    version = subprocess.run(["tshark", "--version"], capture_output=True, text=True)
    print(f"tshark: {version.stdout.splitlines()[0]}")
    with tempfile.TemporaryDirectory() as tmp:
        rows = bench_decode(Path(tmp), args.runs, args.duration, args.noise_rate)
        scapy_fps = bench_scapy(Path(tmp) / "air.pcap")
    print(f"\nCapture-file decoding, median of {args.runs} runs (frames/s):")
    print(
        f"{'file':<12}{'frames':>9}{'MB':>7}{'ours':>11}{'tshark job':>12}{'ratio':>7}"
        f"{'tshark count':>14}{'ratio':>7}  truth"
    )
    for r in rows:
        print(
            f"{r['file']:<12}{r['frames']:>9}{r['mb']:>7}{r['ours_fps']:>11,.0f}"
            f"{r['tshark_job_fps']:>12,.0f}{r['ratio_job']:>6.1f}x{r['tshark_count_fps']:>14,.0f}"
            f"{r['ratio_count']:>6.1f}x  {'equal' if r['counts_equal_truth'] else 'DIFFERS'}"
        )
    print(f"scapy PcapReader (air.pcap, first 20000 frames): {scapy_fps:,.0f} frames/s")
    if args.live:
        print(f"\nLive counting while iperf3 pushes {args.mbps:g} Mbit/s for {args.seconds:g} s:")
        for r in bench_live(args.mbps, args.seconds):
            print(
                f"  filter {r['filter']:<11} iperf3 {r['mbps']:6.0f} Mbit/s  "
                f"CPU {r['cpu_percent']:5.2f} % of one core  "
                f"frames into Python {r['frames_to_python']:>8}  matched {r['frames_matched']}"
            )
    print(f"\nStart-up (median of {args.runs}) and peak RSS:")
    for r in bench_startup(args.runs):
        print(f"  {r['case']:<38} {r['seconds'] * 1000:6.0f} ms  {r['max_rss_mb']:6.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
