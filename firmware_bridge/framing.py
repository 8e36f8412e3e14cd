"""What every framer shares: the decode result and a stream decoder that counts.

A framer's `decode(data)` is a pure function over bytes. It returns a `Decoded`:

    used   how many bytes of `data` it consumed; 0 means "need more bytes"
    frame  the decoded frame, or None when the consumed bytes were dropped
    error  why bytes were dropped: "resync" (no start marker there, skipped up
           to the next one), "checksum" (a whole frame with a bad checksum) or
           "length" (a start marker followed by an impossible length); no frame
           and no error means idle bytes (a lone COBS delimiter), nothing lost

`StreamDecoder` keeps the unconsumed tail between reads and counts what it drops,
so the port reader only feeds it whatever chunk the port returned.
"""

from dataclasses import dataclass, field
from typing import Callable, Generic, List, Optional, TypeVar

F = TypeVar("F")

RESYNC = "resync"
CHECKSUM = "checksum"
LENGTH = "length"


@dataclass(frozen=True)
class Decoded(Generic[F]):
    used: int
    frame: Optional[F] = None
    error: Optional[str] = None


def skip_to(data: bytes, marker: bytes, start: int = 1) -> int:
    """Bytes to skip so `data` starts at the next possible `marker` (at or after `start`).

    A marker's first byte at the very end counts as possible, so a split start marker
    is kept for the next read.
    """
    at = data.find(marker, start)
    if at >= 0:
        return at
    # Keep a trailing prefix of the marker (e.g. a lone 0x42 of 0x42 0x4D).
    for keep in range(len(marker) - 1, 0, -1):
        if len(data) - keep >= start and data.endswith(marker[:keep]):
            return len(data) - keep
    return len(data)


@dataclass
class Counters:
    """Per-port framing counters; they go up with telemetry as metrics."""

    frames_ok: int = 0
    checksum_errors: int = 0
    resyncs: int = 0
    bytes_dropped: int = 0
    bytes_in: int = 0


@dataclass
class StreamDecoder(Generic[F]):
    """Feeds chunks to a pure `decode` and keeps the tail; counts drops.

    `max_buffer` bounds the kept tail: a framer that asks for more than that many
    bytes is looking at noise, so the oldest bytes are dropped as a resync.
    `window` bounds the slice handed to `decode` (a copy per call); it must exceed
    twice the longest frame, so that "need more" only happens at the real end.
    """

    decode: Callable[[bytes], "Decoded[F]"]
    max_buffer: int = 4096
    window: int = 1024
    counters: Counters = field(default_factory=Counters)
    _buf: bytearray = field(default_factory=bytearray)

    def feed(self, chunk: bytes) -> List[F]:
        self.counters.bytes_in += len(chunk)
        self._buf += chunk
        frames: List[F] = []
        view = bytes(self._buf)
        pos = 0
        while pos < len(view):
            result = self.decode(view[pos : pos + self.window])
            if result.used == 0:
                break
            pos += result.used
            if result.frame is not None:
                self.counters.frames_ok += 1
                frames.append(result.frame)
                continue
            if result.error is None:
                continue  # idle bytes (e.g. a lone COBS delimiter), nothing lost
            self.counters.bytes_dropped += result.used
            if result.error == CHECKSUM:
                self.counters.checksum_errors += 1
            else:
                self.counters.resyncs += 1
        del self._buf[:pos]
        if len(self._buf) > self.max_buffer:
            extra = len(self._buf) - self.max_buffer
            del self._buf[:extra]
            self.counters.bytes_dropped += extra
            self.counters.resyncs += 1
        return frames

    def pending(self) -> int:
        return len(self._buf)

    def reset(self) -> None:
        """Forget a partial frame (after the port was reopened)."""
        self._buf.clear()
