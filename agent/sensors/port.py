"""One reader thread per serial port: open with backoff, read chunks, feed a driver.

The thread opens the port through `serial.serial_for_url`, so a device path, a stable
/dev/serial/by-id name, a pty or a `socket://` / `loop://` URL all work. It sleeps in
the kernel until bytes arrive (at most READ_TIMEOUT_S, so polls stay on time), then
takes everything the port holds in one read: never a byte at a time in a loop, and no
busy wake-ups while a sensor is quiet. When the port vanishes (unplugged) the reader
closes it, marks the source unavailable with the reason, and reopens it with
exponential backoff; readings resume without restarting anything.
"""

import contextlib
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Protocol

from firmware_bridge.framing import Counters

log = logging.getLogger(__name__)

READ_CHUNK = 4096
READ_TIMEOUT_S = 0.25
BACKOFF_START_S = 0.25
BACKOFF_MAX_S = 10.0


class Driver(Protocol):
    """What a port reader needs from a device driver."""

    name: str
    baud: int

    @property
    def counters(self) -> Counters:
        """The decoder's frame counters (ok, checksum errors, resyncs, bytes dropped)."""

    def on_open(self, port: Any, now: float) -> None:
        """Send whatever the device needs after the port opens (mode, wake-up)."""

    def poll(self, port: Any, now: float) -> None:
        """Send periodic requests (passive/query mode); called after every read."""

    def feed(self, data: bytes, port: Any, now: float) -> List[Dict[str, float]]:
        """Take bytes from the port; return the readings (name -> physical value)."""

    def reset(self) -> None:
        """Forget partial frames and session state (the port was reopened)."""


@dataclass
class PortState:
    """What the reader knows about its port, read by `gather` under the lock."""

    connected: bool = False
    reason: Optional[str] = "not opened yet"
    last_values: Optional[Dict[str, float]] = None
    last_reading_at: Optional[float] = None  # time.monotonic()
    opened_at: Optional[float] = None
    readings: int = 0
    reopens: int = 0
    loop_errors: int = 0


def open_port(url: str, baud: int) -> Any:
    import serial  # lazy: keep `import agent` light

    return serial.serial_for_url(url, baudrate=baud, timeout=READ_TIMEOUT_S)


class PortReader:
    """Runs a driver on one port in a daemon thread."""

    def __init__(
        self,
        url: str,
        driver: Driver,
        on_reading: Optional[Callable[[Dict[str, float]], None]] = None,
        opener: Callable[[str, int], Any] = open_port,
    ) -> None:
        self.url = url
        self.driver = driver
        self.state = PortState()
        self.lock = threading.Lock()
        self._on_reading = on_reading
        self._opener = opener
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name=f"serial-{self.driver.name}", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)

    def _set(self, **changes: Any) -> None:
        with self.lock:
            for key, value in changes.items():
                setattr(self.state, key, value)

    def _run(self) -> None:
        backoff = BACKOFF_START_S
        while not self._stop.is_set():
            try:
                port = self._opener(self.url, self.driver.baud)
            except Exception as exc:  # top of the loop: any open failure means "retry"
                self._set(connected=False, reason=f"cannot open {self.url}: {_why(exc)}")
                self._stop.wait(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_S)
                continue
            backoff = BACKOFF_START_S
            with self.lock:
                self.state.connected = True
                self.state.reason = None
                self.state.opened_at = time.monotonic()
                self.state.reopens += 1
            self.driver.reset()
            try:
                self._serve(port)
            except Exception as exc:  # unplugged, or a driver bug: count it, reopen
                log.info("%s: port %s lost: %s", self.driver.name, self.url, _why(exc))
                with self.lock:
                    self.state.loop_errors += 1
                    self.state.connected = False
                    self.state.reason = f"port {self.url} lost: {_why(exc)}"
            finally:
                with contextlib.suppress(Exception):  # a vanished port may fail to close
                    port.close()
            self._stop.wait(backoff)

    def _serve(self, port: Any) -> None:
        self.driver.on_open(port, time.monotonic())
        while not self._stop.is_set():
            waiting = port.in_waiting
            if waiting:
                data = port.read(min(waiting, READ_CHUNK))
            else:
                # Block until the first byte (or the timeout), then take the rest of
                # the burst in one read.
                data = port.read(1)
                more = port.in_waiting if data else 0
                if more:
                    data += port.read(min(more, READ_CHUNK))
            now = time.monotonic()
            if data:
                for values in self.driver.feed(data, port, now):
                    with self.lock:
                        self.state.last_values = values
                        self.state.last_reading_at = now
                        self.state.readings += 1
                    if self._on_reading is not None:
                        self._on_reading(values)
            self.driver.poll(port, now)


def check_port(url: str, baud: int) -> str:
    """Open and close a port once (for `doctor` and `sensor read`); CollectorError with
    advice when it cannot be opened."""
    from agent.errors import CollectorError

    try:
        open_port(url, baud).close()
    except Exception as exc:  # pyserial raises SerialException, OSError, ValueError
        raise CollectorError(
            f"cannot open {url}: {_why(exc)}; check the path (ls /dev/serial/by-id/) "
            "and that this user may use it (the dialout group)"
        ) from exc
    if url.startswith("/dev/tty") and "/by-id/" not in url:
        return f"{url} opens (a /dev/serial/by-id/ name would survive replugging)"
    return f"{url} opens"


def _why(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:200]
