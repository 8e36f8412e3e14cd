"""Frames captured from real PMS5003/7003 and SDS011 sensors, through a real pty.

The bytes are PyPMS's captures (tests/data/realworld/sensors/pypms/*.hexdump, see
tests/data/realworld/README.md). They go into the master side of a pseudo-terminal,
with noise between frames (random bytes, a lone start marker, a frame with a broken
checksum) and in chunks of random size so that frames straddle reads; the agent's own
PortReader and driver read the slave side as they read a sensor. The readings must be
exactly the values PyPMS's own tests expect (written out below, with their source).
"""

import os
import random
import threading
import time
import tty
from pathlib import Path
from typing import Dict, List, Tuple

import pytest

from agent.sensors.drivers import Pms5003Driver, Sds011Driver
from agent.sensors.port import PortReader
from tests.sensors.conftest import wait_for

DATA = Path(__file__).resolve().parents[1] / "data" / "realworld" / "sensors" / "pypms"

# PyPMS (github.com/avaldebe/PyPMS, MIT), commit 45c3bf090b5faa59460ac5e02a818c40c5349b2d.
# tests/test_cli.py:44-49 (test_serial, format "csv") replays tests/captured_data/data.csv
# and asserts the output equals tests/captured_data/PMSx003.csv and SDS01x.csv, whose rows
# are these (raw01 raw25 raw10 = CF=1 words 0-2; pm01 pm25 pm10 = words 3-5; n0_3 ..
# n10_0 in #/cm3 = words 6-11 / 100). The frames are PMSx003.hexdump / SDS01x.hexdump.
PMSX003_CSV: List[Tuple[float, ...]] = [
    # raw01 raw25 raw10 pm01 pm25 pm10 n0_3  n0_5  n1_0  n2_5  n5_0  n10_0
    (0, 8, 8, 0.0, 8.0, 8.0, 2.10, 0.70, 0.45, 0.30, 0.00, 0.00),
    (0, 7, 7, 0.0, 7.0, 7.0, 2.10, 0.70, 0.45, 0.30, 0.00, 0.00),
    (0, 7, 7, 0.0, 7.0, 7.0, 1.89, 0.63, 0.42, 0.27, 0.00, 0.00),
    (0, 7, 7, 0.0, 7.0, 7.0, 1.80, 0.60, 0.39, 0.24, 0.00, 0.00),
    (0, 7, 7, 0.0, 7.0, 7.0, 1.80, 0.60, 0.39, 0.24, 0.00, 0.00),
    (0, 6, 6, 0.0, 6.0, 6.0, 1.80, 0.60, 0.29, 0.21, 0.00, 0.00),
    (0, 6, 6, 0.0, 6.0, 6.0, 1.80, 0.60, 0.29, 0.21, 0.00, 0.00),
    (0, 6, 6, 0.0, 6.0, 6.0, 1.59, 0.53, 0.26, 0.18, 0.00, 0.00),
    (0, 6, 6, 0.0, 6.0, 6.0, 1.59, 0.53, 0.26, 0.18, 0.00, 0.00),
    (0, 5, 5, 0.0, 5.0, 5.0, 1.38, 0.46, 0.23, 0.15, 0.00, 0.00),
]
SDS01X_CSV: List[Tuple[float, float]] = [  # pm25 pm10, ug/m3
    (0.6, 0.6), (0.9, 0.9), (0.9, 0.9), (0.9, 0.9), (0.9, 0.9),
    (0.9, 0.9), (0.9, 0.9), (0.8, 0.8), (0.8, 0.8), (0.8, 0.8),
]
# PyPMS tests/sensors/test_sensor.py:76-79 and 86-89 (GoodData, used by test_decode at
# line 190): one message each with the raw values the decoder must give.
GOOD_PMSX003 = (
    bytes.fromhex("424d001c0005000d00160005000d001602fd00fc001d000f00060006970003c5"),
    (5, 13, 22, 5, 13, 22, 765, 252, 29, 15, 6, 6),
)
GOOD_SDS01X = (bytes.fromhex("AAC0D4043A0AA1601DAB"), (1236, 2618))  # tenths of ug/m3

PMS_FIELDS = (
    "pm1_0_cf1", "pm2_5_cf1", "pm10_cf1", "pm1_0", "pm2_5", "pm10",
    "particles_0_3um", "particles_0_5um", "particles_1_0um",
    "particles_2_5um", "particles_5_0um", "particles_10um",
)


def read_hexdump(path: Path) -> bytes:
    """xxd-style lines, `offset: hex bytes  ascii`: the bytes."""
    out = bytearray()
    for line in path.read_text().splitlines():
        if ": " not in line:
            continue
        hexpart = line.split(": ", 1)[1].split("  ", 1)[0]
        out += bytes.fromhex(hexpart)
    return bytes(out)


def split_frames(data: bytes, start: bytes, length_of) -> List[bytes]:
    frames = []
    at = 0
    while at < len(data):
        assert data[at : at + len(start)] == start, f"no frame start at byte {at}"
        n = length_of(data, at)
        frames.append(data[at : at + n])
        at += n
    return frames


def pms_frames() -> List[bytes]:
    data = read_hexdump(DATA / "PMSx003.hexdump")
    return split_frames(data, b"\x42\x4d", lambda d, i: 4 + ((d[i + 2] << 8) | d[i + 3]))


def sds_frames() -> List[bytes]:
    return split_frames(read_hexdump(DATA / "SDS01x.hexdump"), b"\xaa\xc0", lambda d, i: 10)


def pms_expected(row: Tuple[float, ...]) -> Dict[str, float]:
    masses = [float(v) for v in row[:6]]
    counts = [float(round(v * 100)) for v in row[6:]]  # #/cm3 -> count per 0.1 L
    return dict(zip(PMS_FIELDS, masses + counts))


def pms_expected_raw(raw: Tuple[int, ...]) -> Dict[str, float]:
    return dict(zip(PMS_FIELDS, (float(v) for v in raw)))


def sds_expected(pm25: float, pm10: float) -> Dict[str, float]:
    return {"pm2_5": pm25, "pm10": pm10}


def noisy_stream(frames: List[bytes], start: bytes, seed: int) -> Tuple[bytes, int]:
    """Frames with noise before each; returns (bytes, how many noise bytes)."""
    rng = random.Random(seed)
    out = bytearray()
    noise_total = 0
    for i, frame in enumerate(frames):
        kind = i % 4
        if kind == 0:  # line noise that never holds the frame's start byte
            noise = bytes(rng.choice([b for b in range(256) if b != start[0]])
                          for _ in range(rng.randint(1, 24)))
        elif kind == 1:  # a lone start marker, as after a glitch
            noise = start + bytes([rng.randrange(256)])
        elif kind == 2:  # a whole frame whose checksum was hit by noise
            bad = bytearray(frame)
            bad[-2 if start == b"\xaa\xc0" else -1] ^= 0x5A
            noise = bytes(bad)
        else:
            noise = b""
        out += noise + frame
        noise_total += len(noise)
    out += bytes(rng.randrange(1, 0x40) for _ in range(7))  # trailing noise, no frame
    return bytes(out), noise_total


class PtyLine:
    """A pty whose master plays the sensor: what the driver writes is drained."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)  # no line discipline before pyserial sets the port up
        self.path = os.ttyname(self.slave)
        self.sent_by_host = bytearray()
        self._stop = threading.Event()
        self._drain = threading.Thread(target=self._read_host, daemon=True)
        self._drain.start()

    def _read_host(self) -> None:
        import select

        while not self._stop.is_set():
            ready, _, _ = select.select([self.master], [], [], 0.05)
            if ready:
                try:
                    self.sent_by_host += os.read(self.master, 4096)
                except OSError:
                    return

    def send_split(self, data: bytes, seed: int) -> None:
        """Write in chunks of 1..37 bytes with short pauses: reads split frames."""
        rng = random.Random(seed)
        at = 0
        while at < len(data):
            n = rng.randint(1, 37)
            os.write(self.master, data[at : at + n])
            at += n
            time.sleep(rng.choice((0.0, 0.002, 0.01)))

    def close(self) -> None:
        self._stop.set()
        self._drain.join(timeout=2)
        os.close(self.master)
        os.close(self.slave)


@pytest.fixture
def line():
    pty_line = PtyLine()
    yield pty_line
    pty_line.close()


def run_through_pty(line: PtyLine, driver, data: bytes, want: int, seed: int):
    readings: List[Dict[str, float]] = []
    reader = PortReader(line.path, driver, on_reading=readings.append)
    reader.start()
    try:
        wait_for(lambda: reader.state.connected, 10, f"{driver.name} reader to open {line.path}")
        wait_for(lambda: len(line.sent_by_host) > 0, 10, f"{driver.name} start-up commands")
        line.send_split(data, seed)
        wait_for(lambda: len(readings) >= want, 15, f"{want} readings from {driver.name}")
        time.sleep(0.3)  # nothing more may come
    finally:
        reader.close()
    return readings, driver.counters


def test_captured_frames_are_whole():
    pms = pms_frames()
    sds = sds_frames()
    assert len(pms) == len(PMSX003_CSV) == 10
    assert len(sds) == len(SDS01X_CSV) == 10
    assert {len(f) for f in pms} == {32}
    assert {len(f) for f in sds} == {10}


@pytest.mark.parametrize("seed", [1, 2])
def test_pms5003_captured_frames_through_pty(line, seed):
    frames = [*pms_frames(), GOOD_PMSX003[0]]
    want = [pms_expected(r) for r in PMSX003_CSV] + [pms_expected_raw(GOOD_PMSX003[1])]
    data, noise = noisy_stream(frames, b"\x42\x4d", seed)
    readings, counters = run_through_pty(line, Pms5003Driver(mode="active"), data, len(want),
                                         seed)
    assert readings == want
    assert counters.frames_ok == len(want)
    assert counters.checksum_errors >= 1  # the broken copies were seen and refused
    assert counters.bytes_dropped >= noise  # every noise byte dropped, no frame byte kept


@pytest.mark.parametrize("seed", [1, 2])
def test_sds011_captured_frames_through_pty(line, seed):
    frames = [*sds_frames(), GOOD_SDS01X[0]]
    want = [sds_expected(*r) for r in SDS01X_CSV]
    want.append(sds_expected(GOOD_SDS01X[1][0] / 10, GOOD_SDS01X[1][1] / 10))
    data, noise = noisy_stream(frames, b"\xaa\xc0", seed)
    driver = Sds011Driver(mode="active")
    readings, counters = run_through_pty(line, driver, data, len(want), seed)
    assert readings == [pytest.approx(w) for w in want]
    assert counters.frames_ok == len(want)
    assert counters.checksum_errors >= 1
    assert counters.bytes_dropped >= noise
