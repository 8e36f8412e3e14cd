"""A collector whose probe may take seconds runs it in its own thread.

`gather` never waits on the network: it reports the latest finished probe. A probe that
raised CollectorError (or anything else) becomes `unavailable` with its reason; a result
older than three intervals (the probe thread hung) is reported `stale`.
"""

import threading
import time
from typing import Callable, Generic, Optional, Tuple, TypeVar

from agent.collectors.base import Accumulator

T = TypeVar("T")


class BackgroundProbe(Generic[T]):
    """Runs `probe()` every `interval_s` in a daemon thread; keeps the latest outcome."""

    def __init__(self, name: str, probe: Callable[[], T], interval_s: float) -> None:
        self.name = name
        self._probe = probe
        self._interval = interval_s
        self._lock = threading.Lock()
        self._latest: Optional[Tuple[float, Optional[T], Optional[str]]] = None
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self.errors = 0

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name=f"probe-{self.name}",
                                            daemon=True)  # fmt: skip
            self._thread.start()

    def run_once(self) -> None:
        """One probe, its outcome stored for the next gather (the thread's loop body)."""
        try:
            result: Tuple[Optional[T], Optional[str]] = (self._probe(), None)
        except Exception as exc:  # the loop must survive any probe failure; counted
            self.errors += 1
            result = (None, str(exc) or type(exc).__name__)
        with self._lock:
            self._latest = (time.monotonic(), *result)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.run_once()
            self._stop.wait(self._interval)

    def latest(self) -> Tuple[Optional[float], Optional[T], Optional[str]]:
        """(age in seconds or None if no probe finished, result, error reason)."""
        with self._lock:
            if self._latest is None:
                return None, None, None
            at, result, error = self._latest
        return time.monotonic() - at, result, error

    def report(self, acc: Accumulator, source: str) -> Optional[T]:
        """Status for `source` from the latest outcome; the result when it is usable."""
        age, result, error = self.latest()
        if age is None:
            acc.status(source, "unavailable", "no probe has finished yet")
            return None
        if error is not None:
            acc.status(source, "unavailable", error)
            return None
        if age > 3 * self._interval + 1:
            acc.status(source, "stale", f"last probe finished {age:.0f} s ago")
            return None
        return result

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self._interval + 5)
            self._thread = None
