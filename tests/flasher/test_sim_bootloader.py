"""The simulated Optiboot on a pty: avrdude (an independent client) flashes and verifies
through it; simpul-field flash does the same; each fault ends in a clear error."""

import subprocess
from pathlib import Path

import pytest

from tests.flasher.helpers import REPO, run_cli

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def firmware_hex(avr_build: Path) -> Path:
    return avr_build / "board-firmware.hex"


def flash_bytes(hex_path: Path) -> bytes:
    from intelhex import IntelHex

    ih = IntelHex(str(hex_path))
    return bytes(ih.tobinarray(start=0, size=ih.maxaddr() + 1))


def test_avrdude_flashes_and_verifies_through_the_simulator(sim_bootloader, firmware_hex,
                                                             tmp_path) -> None:
    dump = tmp_path / "flash.bin"
    boot = sim_bootloader(dump=dump)
    done = subprocess.run(
        ["avrdude", "-c", "arduino", "-p", "m328p", "-P", boot.pty, "-b", "115200",
         "-U", f"flash:w:{firmware_hex}:i"],
        capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "bytes of flash verified" in done.stderr
    image = flash_bytes(firmware_hex)
    assert dump.read_bytes()[: len(image)] == image


def test_avrdude_notices_the_simulated_stuck_bit(sim_bootloader, firmware_hex) -> None:
    """The verify-mismatch fault is real enough that avrdude, too, refuses the flash."""
    boot = sim_bootloader("verify-mismatch")
    done = subprocess.run(
        ["avrdude", "-c", "arduino", "-p", "m328p", "-P", boot.pty, "-b", "115200",
         "-U", f"flash:w:{firmware_hex}:i"],
        capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "verification error" in done.stderr.lower() or "mismatch" in done.stderr.lower()


def test_flasher_writes_and_verifies_the_image(sim_bootloader, firmware_hex, tmp_path) -> None:
    dump = tmp_path / "flash.bin"
    boot = sim_bootloader(dump=dump)
    done = run_cli("flash", "--port", boot.pty, "--hex", str(firmware_hex))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("flashed and verified: ")
    assert "no modem lines" in done.stderr          # a pty: carried on without a pulse
    assert "verifying: 100%" in done.stderr         # the progress bar ran to the end
    image = flash_bytes(firmware_hex)
    log = boot.stop()
    assert dump.read_bytes()[: len(image)] == image
    assert "sessions 1" in log


def test_flasher_retries_a_single_corrupted_reply(sim_bootloader, firmware_hex,
                                                  tmp_path) -> None:
    dump = tmp_path / "flash.bin"
    boot = sim_bootloader("corrupt-once", dump=dump)
    done = run_cli("flash", "--port", boot.pty, "--hex", str(firmware_hex), "--quiet")
    assert done.returncode == 0, done.stderr
    assert "1 retries" in done.stdout
    boot.stop()
    image = flash_bytes(firmware_hex)
    assert dump.read_bytes()[: len(image)] == image


FAULTS = [
    # fault, exit code, words the technician must see
    ("no-sync", 5, ["no sync at 115200", "try --board nano-old", "press the board's reset",
                    "check the cable"]),
    ("corrupt-reply", 6, ["answered e0 10, not 14 .. 10", "noise on the line", "NOT flashed",
                          "check the cable"]),
    ("verify-mismatch", 8, ["verify failed at 0x0080", "wrote 0x", "NOT flashed"]),
]


@pytest.mark.parametrize("fault, code, words", FAULTS, ids=[f[0] for f in FAULTS])
def test_each_fault_ends_in_a_clear_error(sim_bootloader, firmware_hex, fault, code,
                                          words) -> None:
    boot = sim_bootloader(fault)
    done = run_cli("flash", "--port", boot.pty, "--hex", str(firmware_hex), "--quiet")
    assert done.returncode == code, done.stderr
    assert "flashed and verified" not in done.stdout + done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("simpul-field: ")
    for word in words:
        assert word in last
    assert "Traceback" not in done.stderr


def test_the_wrong_board_is_named(sim_bootloader, firmware_hex) -> None:
    boot = sim_bootloader()
    done = run_cli("flash", "--port", boot.pty, "--hex", str(firmware_hex), "--board",
                   "nano-168", "--quiet")
    assert done.returncode == 7, done.stderr
    assert "1e 95 0f (atmega328p)" in done.stderr and "pick the matching --board" in done.stderr


def test_a_missing_port_and_a_bad_image(tmp_path, firmware_hex) -> None:
    done = run_cli("flash", "--port", str(tmp_path / "ttyUSB9"), "--hex", str(firmware_hex))
    assert done.returncode == 4 and "cannot open" in done.stderr
    bad = tmp_path / "bad.hex"
    bad.write_text(":0400000001020304FF\n")
    done = run_cli("flash", "--port", str(tmp_path / "ttyUSB9"), "--hex", str(bad))
    assert done.returncode == 3 and "not a valid Intel HEX" in done.stderr
    assert (REPO / "simpul_field" / "cli.py").exists()


def _one_line_refusal(done: "subprocess.CompletedProcess[str]", code: int) -> str:
    assert done.returncode == code, done.stderr
    assert "flashed and verified" not in done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("simpul-field: ")
    return lines[0]


def test_an_arduino_export_with_the_bootloader_is_refused_as_such(sim_bootloader, firmware_hex,
                                                                  tmp_path) -> None:
    """Arduino IDE's Export compiled Binary: the sketch, then Optiboot at 0x7E00."""
    from tests.flasher.helpers import OPTIBOOT

    sketch = [line for line in firmware_hex.read_text().splitlines() if line[7:9] != "01"]
    optiboot = OPTIBOOT.read_text().splitlines()[:32]   # 0x7E00-0x7FFF, before the overlap
    export = tmp_path / "sketch.ino.with_bootloader.hex"
    export.write_text("\n".join(sketch + optiboot + [":00000001FF"]) + "\n")
    boot = sim_bootloader()
    done = run_cli("flash", "--port", boot.pty, "--hex", str(export), "--quiet")
    line = _one_line_refusal(done, 3)
    assert f"{export} contains a bootloader (records at 0x7E00-0x7FFF" in line
    assert f"use {tmp_path / 'sketch.ino.hex'}" in line
    assert "too big" not in line
    assert "pages written 0, sessions 0" in boot.stop()   # refused before touching the board


def test_a_bootloader_hex_with_overlapping_records_says_where(sim_bootloader) -> None:
    from tests.flasher.helpers import OPTIBOOT

    boot = sim_bootloader()
    done = run_cli("flash", "--port", boot.pty, "--hex", str(OPTIBOOT), "--quiet")
    line = _one_line_refusal(done, 3)
    assert ("has overlapping records: line 32 (0x7FF0-0x7FFF) and line 35 (0x7FFE-0x7FFF) "
            "both write 0x7FFE-0x7FFF, with different bytes (90 83, then 04 04)") in line
    assert "bootloader's own HEX" in line


def test_the_sync_banner_says_what_the_board_answered(sim_bootloader, firmware_hex) -> None:
    """nano-old's profile says ATmegaBOOT; the simulated board answers as Optiboot does."""
    from simulator.stk500 import OPTIBOOT_MAJOR, OPTIBOOT_MINOR

    version = f"{OPTIBOOT_MAJOR}.{OPTIBOOT_MINOR}"
    boot = sim_bootloader()
    done = run_cli("flash", "--port", boot.pty, "--hex", str(firmware_hex), "--board",
                   "nano-old", "--quiet")
    assert done.returncode == 0, done.stderr
    assert (f"in sync with optiboot {version}, atmega328p (the board answered software "
            f"version {version}, signature 1e 95 0f); note: --board nano-old is for "
            "atmegaboot;") in done.stderr
    assert "atmegaboot " + version not in done.stderr
