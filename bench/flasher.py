"""Flash time: simpul-field flash against avrdude (the reference), same image, same board.

Two boards: the simulated bootloader (simpul-sim bootloader, no line speed: the cost of
the tools themselves) and Optiboot in simavr (simboard; its UART runs at the configured
115200 baud in simulated time, paced to the wall clock, so this is close to a real Uno).
Each figure is the median wall time of N whole command runs, process start included.

    PYTHONPATH=. python bench/flasher.py [--runs 5]
"""

import argparse
import os
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

REPO = Path(__file__).resolve().parents[1]
OPTIBOOT = "/usr/share/arduino/hardware/arduino/avr/bootloaders/optiboot/optiboot_atmega328.hex"


def start(argv: List[str]) -> "tuple[subprocess.Popen[bytes], str]":
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    assert proc.stdout is not None
    select.select([proc.stdout], [], [], 20)
    return proc, proc.stdout.readline().decode().strip()


def timed(argv: List[str]) -> float:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    t0 = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, env=env, timeout=120)
    took = time.perf_counter() - t0
    if done.returncode:
        raise SystemExit(f"{argv[0]} failed: {done.stderr.decode()[-400:]}")
    return took


def bench(board: str, pty: str, image: Path, runs: int, quiet_gap: float) -> None:
    ours = [sys.executable, "-m", "simpul_field.cli", "flash", "--port", pty,
            "--hex", str(image), "--quiet"]
    ref = ["avrdude", "-q", "-q", "-c", "arduino", "-p", "m328p", "-P", pty, "-b",
           "115200", "-U", f"flash:w:{image}:i"]
    times: Dict[str, List[float]] = {"simpul-field": [], "avrdude": []}
    for _ in range(runs):
        for name, argv in (("simpul-field", ours), ("avrdude", ref)):
            time.sleep(quiet_gap)
            times[name].append(timed(argv))
    a, b = statistics.median(times["simpul-field"]), statistics.median(times["avrdude"])
    print(f"{board}: simpul-field {a:.2f} s, avrdude {b:.2f} s (medians of {runs}); "
          f"ratio {a / b:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as out:
        subprocess.run(["make", "-s", "-C", str(REPO / "simulator/avr"), f"OUT={out}"],
                       check=True, capture_output=True)
        image = Path(out) / "board-firmware.hex"
        print(f"image: {image.stat().st_size} bytes of Intel HEX")
        sim, pty = start([sys.executable, "-m", "simulator.cli", "bootloader"])
        try:
            bench("simulated bootloader", pty, image, args.runs, 0.0)
        finally:
            sim.send_signal(signal.SIGTERM)
            sim.wait()
        board, pty = start([f"{out}/simboard", OPTIBOOT])
        try:
            # 2.2 s of quiet before each run, so simboard's auto-reset starts Optiboot.
            bench("Optiboot in simavr", pty, image, args.runs, 2.2)
        finally:
            board.send_signal(signal.SIGTERM)
            board.wait()


if __name__ == "__main__":
    main()
