"""The flasher against real bootloaders (Debian arduino-core-avr's Optiboot and
ATmegaBOOT) on an ATmega328P simulated by simavr; then the flashed firmware runs and
is read through firmware_bridge."""

import signal
import subprocess
import time
from pathlib import Path
from typing import List

import pytest

from firmware_bridge import board_protocol as bp
from firmware_bridge.flasher.boards import PROFILES
from firmware_bridge.framing import StreamDecoder
from tests.flasher.helpers import ATMEGABOOT, OPTIBOOT, PY, env, run_cli, wait_for

pytestmark = pytest.mark.slow

QUIET_S = 2.2  # simboard's auto-reset counts bytes after 2 s of silence as a port open


def read_messages(port_path: str, seconds: float, want_readings: int) -> List[object]:
    import serial

    messages: List[object] = []
    decoder = StreamDecoder(bp.decode)
    with serial.Serial(port_path, 115200, timeout=0.1) as port:
        port.write(b"\x00" + bp.encode(bp.HelloRequest(), seq=0))
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for frame in decoder.feed(port.read(256)):
                messages.append(bp.parse(frame))
            hellos = [m for m in messages if isinstance(m, bp.Hello)]
            readings = [m for m in messages if isinstance(m, bp.Reading)]
            if hellos and len(readings) >= want_readings:
                break
    return messages


BOOTLOADERS = [
    # board profile, Debian's bootloader image, what the flasher says once in sync
    ("uno", OPTIBOOT, "in sync with optiboot 4.4, atmega328p"),
    ("nano-old", ATMEGABOOT, "in sync with atmegaboot 1.16, atmega328p"),
]


@pytest.mark.parametrize("board_name, bootloader, banner", BOOTLOADERS,
                         ids=[b[0] for b in BOOTLOADERS])
def test_flash_a_real_bootloader_then_the_firmware_runs(simboard, avr_build: Path,
                                                        board_name, bootloader,
                                                        banner) -> None:
    board = simboard(bootloader=bootloader)
    firmware = avr_build / "board-firmware.hex"
    baud = str(PROFILES[board_name].baud)

    # 1. simpul-field flash writes through the bootloader and verifies by reading back.
    done = run_cli("flash", "--port", board.pty, "--hex", str(firmware), "--board",
                   board_name)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("flashed and verified: ")
    assert banner in done.stderr

    # 2. avrdude, independently, finds exactly that image in the chip's flash. On a
    # loaded machine avrdude's single sync try can meet the running firmware's bytes
    # before the simulated auto-reset; like a technician, try it up to three times.
    for _attempt in range(3):
        time.sleep(QUIET_S)
        check = subprocess.run(
            ["avrdude", "-c", "arduino", "-p", "m328p", "-P", board.pty, "-b", baud,
             "-U", f"flash:v:{firmware}:i"], capture_output=True, text=True, timeout=120)
        if check.returncode == 0 or "verification error" in check.stderr:
            break
    assert check.returncode == 0, check.stderr
    assert "bytes of flash verified" in check.stderr

    # 3. Optiboot starts the application; it speaks the Simpul board protocol.
    messages = read_messages(board.pty, seconds=20, want_readings=3)
    hellos = [m for m in messages if isinstance(m, bp.Hello)]
    readings = [m for m in messages if isinstance(m, bp.Reading)]
    assert hellos, f"no HELLO from the board; got {messages!r}"
    hello = hellos[0]
    assert hello.board_id == b"SIMPUL01" and hello.fw_version == (0, 1, 0)
    assert [(c.name, c.unit, c.exponent) for c in hello.channels] == [
        ("temp", "degC", -1), ("pm25", "ug/m3", 0)]
    assert len(readings) >= 3
    uptimes = [r.uptime_ms for r in readings]
    assert uptimes == sorted(uptimes) and uptimes[-1] > uptimes[0]
    for r in readings:
        values = {ch: (status, raw) for ch, status, raw in r.values}
        assert values[1] == (bp.STATUS_OK, 12)
        assert values[0][0] == bp.STATUS_OK and 250 <= values[0][1] <= 259

    log = board.stop()
    assert "external reset (auto-reset: the host opened the port)" in log


def test_no_reset_no_sync_then_the_reset_button(simboard, avr_build: Path) -> None:
    """A board running its application, on a port with no DTR (no auto-reset): Optiboot
    never answers and the technician is told to press reset. Pressing it while the
    flasher is still trying to sync (SIGUSR1 to simboard) then gets the board flashed."""
    board = simboard("--no-auto-reset")
    # Optiboot's power-on window (1 s) passes and it starts the (empty) application.
    assert wait_for(lambda: "running the application" in board.log.read_text(), 30)
    firmware = str(avr_build / "board-firmware.hex")
    done = run_cli("flash", "--port", board.pty, "--hex", firmware, "--quiet")
    assert done.returncode == 5, done.stderr
    assert "no sync at 115200" in done.stderr
    assert "press the board's reset button" in done.stderr
    assert "flashed and verified" not in done.stdout

    flasher = subprocess.Popen(
        [PY, "-m", "simpul_field.cli", "flash", "--port", board.pty, "--hex", firmware,
         "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env())
    assert flasher.stderr is not None
    first = flasher.stderr.readline()   # printed once the port is open, before sync
    assert "no reset pulse" in first
    time.sleep(0.3)
    board.signal(signal.SIGUSR1)         # the technician presses reset
    out, err = flasher.communicate(timeout=120)
    assert flasher.returncode == 0, err
    assert out.startswith("flashed and verified: ")
    assert "external reset (reset button)" in board.stop()
