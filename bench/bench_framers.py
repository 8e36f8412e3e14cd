"""Framer throughput (MB/s) on streams with 10 % noise, and agent CPU for four sensors.

    PYTHONPATH=. python bench/bench_framers.py            # framers only
    PYTHONPATH=. python bench/bench_framers.py --cpu 20   # plus 4 sensors at 1 Hz, 20 s runs

Each figure is the median of 5 runs. The reference for each framer is the least work
any decoder of that format must do, measured in the same run on the same frames:
for PMS and SDS011, `struct.unpack` of perfectly aligned frames without noise; for the
board protocol, `bytes.split(b"\\0")` plus the `cobs` C decoder on every frame.
"""

import argparse
import os
import random
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from typing import Callable, List, Tuple

from firmware_bridge import board_protocol as bp
from firmware_bridge import pms, sds011
from firmware_bridge.framing import StreamDecoder

RUNS = 5
CHUNK = 4096
STREAM_BYTES = 2_000_000


def noisy_stream(frames: List[bytes], noise: float, seed: int = 1) -> Tuple[bytes, int]:
    """Frames with random bytes between them, `noise` of the total; returns (stream, n)."""
    rng = random.Random(seed)
    out = bytearray()
    count = 0
    while len(out) < STREAM_BYTES:
        frame = frames[count % len(frames)]
        gap = rng.randint(0, int(2 * len(frame) * noise / (1 - noise)))
        out += bytes(rng.getrandbits(8) for _ in range(gap))
        out += frame
        count += 1
    return bytes(out), count


def median_mbps(fn: Callable[[], int], size: int) -> Tuple[float, int]:
    times, result = [], 0
    for _ in range(RUNS):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return size / statistics.median(times) / 1e6, result


def run_framer(decode, stream: bytes) -> Callable[[], int]:
    def go() -> int:
        dec = StreamDecoder(decode)
        n = 0
        for i in range(0, len(stream), CHUNK):
            n += len(dec.feed(stream[i : i + CHUNK]))
        return n

    return go


def framers() -> None:
    rng = random.Random(2)
    cases = {
        "pms5003": ([pms.encode_reading(tuple(rng.randrange(1000) for _ in range(13)))
                     for _ in range(64)], pms.decode),
        "sds011": ([sds011.encode_reading(rng.randrange(9999), rng.randrange(9999))
                    for _ in range(64)], sds011.decode),
        "bridge": ([bp.encode(bp.Reading(i, tuple((c, 0, rng.randrange(-9999, 9999))
                                                  for c in range(4))), i)
                    for i in range(64)], bp.decode),
    }
    print(f"{'framer':10} {'MB/s':>8} {'frames/s':>10} {'ref MB/s':>9} {'ratio':>6}  found")
    for name, (frames, decode) in cases.items():
        stream, sent = noisy_stream(frames, 0.10)
        mbps, found = median_mbps(run_framer(decode, stream), len(stream))
        clean = b"".join(frames) * (len(stream) // sum(map(len, frames)))
        ref = _reference(name, clean)
        ref_mbps, _ = median_mbps(ref, len(clean))
        fps = mbps * 1e6 / (len(stream) / sent)
        print(f"{name:10} {mbps:8.2f} {fps:10.0f} {ref_mbps:9.2f} {mbps / ref_mbps:6.2f}"
              f"  {found}/{sent}")


def _reference(name: str, clean: bytes) -> Callable[[], int]:
    from cobs import cobs

    if name == "bridge":
        return lambda: sum(1 for part in clean.split(b"\x00") if part and cobs.decode(part))
    size, fmt = (32, ">2sH13HH") if name == "pms5003" else (10, "<2sHHHBB")
    unpack = struct.Struct(fmt).unpack_from
    return lambda: sum(1 for off in range(0, len(clean), size) if unpack(clean, off))


AGENT = r"""
import os, sys, time
from agent.collectors.base import Accumulator
from agent.collectors.registry import build
from simpul_wire.config import parse_config
text = sys.stdin.read()
duration = float(sys.argv[1])
cols = [build(c) for c in parse_config(text).collectors]
for c in cols: c.start()
time.sleep(3)  # let the ports open and the handshakes finish
t0, c0 = time.monotonic(), time.process_time()
ok = 0
while time.monotonic() - t0 < duration:
    acc = Accumulator()
    for c in cols: c.gather(acc)
    ok += sum(1 for s in acc.sources.values() if s.state == "ok")
    time.sleep(1.0)
cpu, wall = time.process_time() - c0, time.monotonic() - t0
for c in cols: c.close()
print(cpu / wall * 100, ok)
"""


def agent_cpu(duration: float) -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.getcwd() + os.pathsep + env.get("PYTHONPATH", "")
    tmp = tempfile.mkdtemp(prefix="simpul-bench-")
    sims, config = [], '[device]\ndevice_id = "bench-1"\n'
    for driver in ("pms5003", "sds011", "bridge", "modbus"):
        link = os.path.join(tmp, driver)
        sims.append(subprocess.Popen(
            [sys.executable, "-m", "simulator.cli", "sensor", "--driver", driver,
             "--link", link, "--interval", "1"], env=env, stdout=subprocess.DEVNULL))
        config += f'[[collectors]]\ntype = "{driver}"\nname = "{driver}"\nport = "{link}"\n'
        if driver == "modbus":
            config += f'map_file = "{link}.map.toml"\n'
    try:
        while not all(os.path.exists(os.path.join(tmp, d)) for d in ("pms5003", "modbus")):
            time.sleep(0.1)
        time.sleep(1)
        results = []
        for _ in range(RUNS):
            out = subprocess.run([sys.executable, "-c", AGENT, str(duration)], input=config,
                                 env=env, capture_output=True, text=True, check=True)
            pct, ok = out.stdout.split()
            results.append(float(pct))
            print(f"  run: {float(pct):.3f} % of one core, {ok} ok source-samples")
        print(f"agent CPU, 4 sensors at 1 Hz, {duration:g} s runs: median "
              f"{statistics.median(results):.3f} % of one core (goal < 0.5 %)")
    finally:
        for proc in sims:
            proc.send_signal(signal.SIGTERM)
        for proc in sims:
            proc.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cpu", type=float, default=0.0, help="seconds per agent CPU run")
    args = parser.parse_args()
    print(f"Python {sys.version.split()[0]}, {RUNS} runs each, "
          f"{STREAM_BYTES / 1e6:g} MB streams with 10 % noise, {CHUNK}-byte reads")
    framers()
    if args.cpu:
        agent_cpu(args.cpu)


if __name__ == "__main__":
    main()
