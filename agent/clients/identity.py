"""Keyed identities: a MAC becomes HMAC-SHA256(key, mac) truncated to 8 bytes.

The key is 32 random bytes from os.urandom, held only in this object's memory, and
replaced at the first use after local midnight: after that nobody, not even this box,
can link today's identities to yesterday's, and no table of all 2^48 MACs helps
without the key. Nothing here ever writes the key, an identity or a MAC anywhere.
"""

import hmac
import os
import time
from datetime import date
from typing import Callable, Optional

IDENT_BYTES = 8  # 64 bits: collisions stay negligible for the thousands seen in a day


class Keyring:
    """Holds today's key; `ident(mac)` is the only way a MAC goes into the counters."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._day = date.fromtimestamp(clock())
        self._key = os.urandom(32)
        self.rotations = 0

    def __repr__(self) -> str:  # never show the key, even in a debugger or a log
        return f"Keyring(day={self._day.isoformat()}, rotations={self.rotations})"

    def _maybe_rotate(self) -> None:
        today = date.fromtimestamp(self._clock())
        if today != self._day:
            self._day = today
            self._key = os.urandom(32)
            self.rotations += 1

    def check_rotation(self) -> bool:
        """Rotate if the day changed; True when it did (callers then forget old ids)."""
        before = self.rotations
        self._maybe_rotate()
        return self.rotations != before

    def ident(self, mac: bytes) -> bytes:
        return hmac.digest(self._key, mac, "sha256")[:IDENT_BYTES]


_shared: Optional[Keyring] = None


def shared_keyring() -> Keyring:
    """The one key of this agent process, used by every client collector.

    One key means one secret to rotate and forget, and identities from different
    sources (hostapd, leases, capture) that could be compared on the box."""
    global _shared
    if _shared is None:
        _shared = Keyring()
    return _shared
