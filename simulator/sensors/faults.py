"""Faults on demand, applied to the bytes a virtual sensor sends.

garbage       random bytes between frames (probability per frame)
split         a frame written in two parts with a pause (probability per frame)
bad_checksum  one byte of the frame flipped (probability per frame)
stuck         the device's values stop changing
silence       the device sends nothing (a window, or toggled by SIGUSR2)
unplug        the pty and its symlink vanish and come back (a window, or SIGUSR1)
"""

import random
import time
from dataclasses import dataclass
from typing import List, Optional, Tuple


@dataclass
class Faults:
    garbage: float = 0.0
    split: float = 0.0
    split_pause_s: float = 0.02
    bad_checksum: float = 0.0
    stuck: bool = False
    silence_after_s: Optional[float] = None
    silence_for_s: float = 5.0
    unplug_after_s: Optional[float] = None
    unplug_for_s: float = 3.0
    seed: Optional[int] = None

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.silenced = False  # toggled by SIGUSR2
        self.unplugged = False  # toggled by SIGUSR1
        self.started = time.monotonic()

    def _in_window(self, after: Optional[float], length: float, now: float) -> bool:
        return after is not None and after <= now - self.started < after + length

    def silent(self, now: float) -> bool:
        return self.silenced or self._in_window(self.silence_after_s, self.silence_for_s, now)

    def should_unplug(self, now: float) -> bool:
        return self.unplugged or self._in_window(self.unplug_after_s, self.unplug_for_s, now)

    def corrupt(self, frame: bytes) -> bytes:
        if not frame or self.rng.random() >= self.bad_checksum:
            return frame
        data = bytearray(frame)
        at = self.rng.randrange(2, len(data) - 1) if len(data) > 3 else 0
        flipped = data[at] ^ 0x01
        # Never create a 0x00: for COBS that would be a frame cut, not a checksum error.
        data[at] = flipped if flipped else data[at] ^ 0x02
        return bytes(data)

    def pieces(self, frame: bytes) -> List[Tuple[bytes, float]]:
        """The writes for one frame: (bytes, pause after), with garbage and splits."""
        out: List[Tuple[bytes, float]] = []
        if self.garbage and self.rng.random() < self.garbage:
            out.append((bytes(self.rng.randrange(256) for _ in range(self.rng.randint(1, 16))), 0))
        frame = self.corrupt(frame)
        if len(frame) > 1 and self.split and self.rng.random() < self.split:
            cut = self.rng.randrange(1, len(frame))
            out += [(frame[:cut], self.split_pause_s), (frame[cut:], 0.0)]
        else:
            out.append((frame, 0.0))
        return out
