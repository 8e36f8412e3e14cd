"""The simulator loop: one device on one pty, with faults, until interrupted.

Single-threaded: select() on the pty master with a timeout until the device's next
frame. SIGUSR1 toggles unplug/replug and SIGUSR2 toggles silence, so a test can
cause an outage exactly when it wants one.
"""

import os
import select
import signal
import time
from typing import Any, Callable, Optional

from simulator.sensors.devices import Device
from simulator.sensors.faults import Faults
from simulator.sensors.pty_port import PtyPort

TICK_S = 0.02


class Runner:
    def __init__(self, device: Device, faults: Faults, link: str,
                 say: Callable[[str], None] = print) -> None:
        self.device = device
        self.faults = faults
        self.port = PtyPort(link)
        self.say = say
        self._stop = False

    def install_signals(self) -> None:
        def toggle_unplug(*_: Any) -> None:
            self.faults.unplugged = not self.faults.unplugged

        def toggle_silence(*_: Any) -> None:
            self.faults.silenced = not self.faults.silenced

        def stop(*_: Any) -> None:
            self._stop = True

        signal.signal(signal.SIGUSR1, toggle_unplug)
        signal.signal(signal.SIGUSR2, toggle_silence)
        signal.signal(signal.SIGTERM, stop)

    def _send(self, frames: "list[bytes]", now: float) -> None:
        if self.faults.silent(now):
            return
        for frame in frames:
            for piece, pause in self.faults.pieces(frame):
                self.port.write(piece)
                if pause:
                    time.sleep(pause)

    def _plug(self, now: float) -> None:
        path = self.port.plug()
        self.say(f"plugged {self.device.driver} on {path} via {self.port.link}")
        self._send(self.device.start(now), now)

    def run(self, duration_s: Optional[float] = None) -> None:
        self.device.values.stuck = self.faults.stuck
        started = time.monotonic()
        self._plug(started)
        try:
            while not self._stop:
                now = time.monotonic()
                if duration_s is not None and now - started >= duration_s:
                    break
                want_out = self.faults.should_unplug(now)
                if want_out and self.port.plugged:
                    self.port.unplug()
                    self.say(f"unplugged {self.port.link}")
                elif not want_out and not self.port.plugged:
                    self._plug(now)
                fds = [self.port.master] if self.port.master is not None else []
                inner = getattr(self.device, "inner_master", None)
                if inner is not None:
                    fds.append(inner)
                try:
                    ready, _, _ = select.select(fds, [], [], TICK_S)
                except InterruptedError:
                    continue
                now = time.monotonic()
                if self.port.master is not None and self.port.master in ready:
                    data = self.port.read()
                    if data and not self.faults.silent(now):
                        self._send(self.device.on_bytes(data, now), now)
                self._send(self.device.tick(now), now)
        finally:
            if self.port.plugged:
                self.port.unplug()


def default_link(driver: str) -> str:
    return os.path.join("/tmp", f"simpul-sensor-{driver}-{os.getpid()}")
