"""Helpers for the flasher tests: child processes that print a pty path, the CLI."""

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List

REPO = Path(__file__).resolve().parents[2]
OPTIBOOT = Path("/usr/share/arduino/hardware/arduino/avr/bootloaders/optiboot/"
                "optiboot_atmega328.hex")
ATMEGABOOT = Path("/usr/share/arduino/hardware/arduino/avr/bootloaders/atmega/"
                  "ATmegaBOOT_168_atmega328.hex")
PY = sys.executable


def env() -> Dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = str(REPO) + os.pathsep + e.get("PYTHONPATH", "")
    return e


class Proc:
    """A child process that prints a pty path on its first stdout line."""

    def __init__(self, argv: List[str], log: Path) -> None:
        self.log = log
        self.err = open(log, "wb")
        self.p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self.err, env=env())
        assert self.p.stdout is not None
        ready, _, _ = select.select([self.p.stdout], [], [], 20)
        line = self.p.stdout.readline().decode().strip() if ready else ""
        if not line.startswith("/dev/"):
            self.stop()
            raise RuntimeError(f"{argv[0]} gave no pty: {line!r}; {log.read_text()}")
        self.pty = line

    def signal(self, sig: int) -> None:
        self.p.send_signal(sig)

    def stop(self) -> str:
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        if self.p.stdout:
            self.p.stdout.close()
        self.err.close()
        return self.log.read_text(errors="replace")


def run_cli(*args: str, timeout: float = 120) -> "subprocess.CompletedProcess[str]":
    return subprocess.run([PY, "-m", "simpul_field.cli", *args], capture_output=True,
                          text=True, env=env(), timeout=timeout)


def wait_for(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()
