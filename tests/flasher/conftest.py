"""Fixtures for the flasher tests: the simulated bootloader, the simavr board and the
C/AVR builds they need (built with make into a temporary directory, never committed)."""

import subprocess
from pathlib import Path
from typing import Callable, Iterator, List, Optional

import pytest

from tests.flasher.helpers import OPTIBOOT, PY, REPO, Proc


@pytest.fixture
def sim_bootloader(tmp_path: Path) -> Iterator[Callable[..., Proc]]:
    """Start `simpul-sim bootloader`; returns a factory taking the fault name."""
    procs: List[Proc] = []

    def start(fault: str = "none", dump: Optional[Path] = None) -> Proc:
        argv = [PY, "-m", "simulator.cli", "bootloader", "--fault", fault]
        if dump:
            argv += ["--dump", str(dump)]
        proc = Proc(argv, tmp_path / f"bootloader-{len(procs)}.log")
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        proc.stop()


@pytest.fixture(scope="session")
def avr_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """simboard (C, against libsimavr) and the board firmware (avr-gcc), built by make."""
    out = tmp_path_factory.mktemp("avr-build")
    subprocess.run(["make", "-s", "-C", str(REPO / "simulator" / "avr"), f"OUT={out}"],
                   check=True, capture_output=True, timeout=300)
    return out


@pytest.fixture
def simboard(avr_build: Path, tmp_path: Path) -> Iterator[Callable[..., Proc]]:
    """Start an Arduino Uno in simavr running Debian's Optiboot, its UART on a pty;
    a factory taking simboard's extra arguments (e.g. "--no-auto-reset") and
    optionally another bootloader."""
    procs: List[Proc] = []

    def start(*extra: str, bootloader: Path = OPTIBOOT) -> Proc:
        proc = Proc([str(avr_build / "simboard"), str(bootloader), *extra],
                    tmp_path / f"simboard-{len(procs)}.log")
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        proc.stop()
