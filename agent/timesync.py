"""Is the box's clock right? Raspberry Pis have no real-time clock, so until NTP syncs
the wall clock may say 1970 (or whatever the last fake-hwclock save said).

`ntp_synced()` fills TelemetryBatch.ntp_synced: True / False, or None when this box
cannot tell. It asks the kernel first (adjtimex(2) with modes=0 only reads, needs no
privilege and no systemd; the kernel clears STA_UNSYNC once an NTP daemon disciplines
the clock), and `timedatectl show -p NTPSynchronized` when adjtimex is unavailable.
The answer is cached for a while: it changes rarely and a simulator runs thousands of
boxes in one process.

`ClockJumps` notices the wall clock stepping (NTP's first sync after a boot in 1970,
or a correction from the far future) by comparing it with the monotonic clock, so the
caller can shift stored times by the step instead of treating fresh records as ancient.
"""

import ctypes
import ctypes.util
import subprocess
import time
from typing import Any, Callable, Dict, Optional

STA_UNSYNC = 0x0040
TIME_ERROR = 5
CACHE_S = 30.0


class _Timeval(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long)]


class _Timex(ctypes.Structure):
    # struct timex from <sys/timex.h>; natural alignment gives the kernel's padding.
    _fields_ = [
        ("modes", ctypes.c_uint), ("offset", ctypes.c_long), ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long), ("esterror", ctypes.c_long), ("status", ctypes.c_int),
        ("constant", ctypes.c_long), ("precision", ctypes.c_long),
        ("tolerance", ctypes.c_long), ("time", _Timeval), ("tick", ctypes.c_long),
        ("ppsfreq", ctypes.c_long), ("jitter", ctypes.c_long), ("shift", ctypes.c_int),
        ("stabil", ctypes.c_long), ("jitcnt", ctypes.c_long), ("calcnt", ctypes.c_long),
        ("errcnt", ctypes.c_long), ("stbcnt", ctypes.c_long), ("tai", ctypes.c_int),
        ("_reserved", ctypes.c_int * 16),  # the kernel's trailing padding, and a margin
    ]


def synced_from_adjtimex(state: int, status: int) -> Optional[bool]:
    """adjtimex's return value and timex.status → synced? (pure, for tests)"""
    if state < 0:
        return None
    return not (status & STA_UNSYNC) and state != TIME_ERROR


def parse_timedatectl(text: str) -> Optional[bool]:
    """`timedatectl show -p NTPSynchronized` output → synced? None when it says nothing."""
    for line in text.splitlines():
        key, _, value = line.strip().partition("=")
        if key == "NTPSynchronized":
            return {"yes": True, "no": False}.get(value.strip().lower())
    return None


def _adjtimex() -> Optional[bool]:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name, use_errno=True)
        call = libc.adjtimex
    except (OSError, AttributeError):
        return None
    tx = _Timex()  # modes=0: read only
    return synced_from_adjtimex(int(call(ctypes.byref(tx))), int(tx.status))


def _timedatectl() -> Optional[bool]:
    try:
        done = subprocess.run(["timedatectl", "show", "-p", "NTPSynchronized"],
                              capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return parse_timedatectl(done.stdout) if done.returncode == 0 else None


_cache: Dict[str, Any] = {"at": -CACHE_S, "value": None}


def ntp_synced(monotonic: Callable[[], float] = time.monotonic) -> Optional[bool]:
    """True when NTP has synced this box's clock, False when not, None when unknown."""
    now = monotonic()
    if now - _cache["at"] < CACHE_S:
        return _cache["value"]  # type: ignore[no-any-return]
    value = _adjtimex()
    if value is None:
        value = _timedatectl()
    _cache.update(at=now, value=value)
    return value


class ClockJumps:
    """Wall-clock steps seen against the monotonic clock. `check()` returns the step in
    seconds since the last check when it exceeds `threshold_s`, else 0.0."""

    def __init__(self, wall: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic,
                 threshold_s: float = 60.0) -> None:
        self.wall = wall
        self.monotonic = monotonic
        self.threshold_s = threshold_s
        self._offset = wall() - monotonic()
        self.jumps = 0

    def check(self) -> float:
        offset = self.wall() - self.monotonic()
        step = offset - self._offset
        self._offset = offset
        if abs(step) < self.threshold_s:
            return 0.0
        self.jumps += 1
        return step
