"""Fixtures for serial sensor tests: `simpul-sim sensor` on a pty, run for real."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator, List

import pytest

REPO = Path(__file__).resolve().parents[2]


def env() -> dict:
    out = dict(os.environ)
    out["PYTHONPATH"] = str(REPO) + os.pathsep + out.get("PYTHONPATH", "")
    return out


class Sim:
    def __init__(self, proc: "subprocess.Popen[str]", link: str) -> None:
        self.proc = proc
        self.link = link
        self.map_file = f"{link}.map.toml"

    def unplug_toggle(self) -> None:
        self.proc.send_signal(signal.SIGUSR1)

    def silence_toggle(self) -> None:
        self.proc.send_signal(signal.SIGUSR2)


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture
def sensor_sim(tmp_path) -> Iterator:
    """Start simulators: `sensor_sim("sds011", "--garbage", "0.2")` returns a Sim."""
    procs: List[subprocess.Popen[str]] = []

    def start(driver: str, *args: str) -> Sim:
        link = str(tmp_path / f"{driver}-{os.getpid()}-{len(procs)}")
        proc = subprocess.Popen(
            [sys.executable, "-m", "simulator.cli", "sensor", "--driver", driver,
             "--link", link, *args],
            env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        procs.append(proc)
        wait_for(lambda: os.path.exists(link) or proc.poll() is not None, 15, f"{link}")
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        return Sim(proc, link)

    yield start
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def agent_cli(*args: str, timeout: float = 60) -> "subprocess.CompletedProcess[str]":
    return subprocess.run([sys.executable, "-m", "agent.cli", *args], env=env(),
                          capture_output=True, text=True, timeout=timeout)
