"""sd_notify(3) without libsystemd: one datagram to $NOTIFY_SOCKET per state change.

    notify("READY=1")            after start-up, once the first publish is queued
    notify("WATCHDOG=1")         every watchdog_interval() / 2 from the main loop
    notify("STOPPING=1")         when shutting down
    notify("STATUS=publishing")  free text shown by `systemctl status`

Outside systemd ($NOTIFY_SOCKET unset) every call is a no-op returning False. A socket
path starting with '@' is in the abstract namespace. Never raises: a lost notification
is logged by the caller at most, and systemd's watchdog decides what happens.
"""

import os
import socket
from typing import Mapping, Optional

__all__ = ["Notifier", "notify", "watchdog_interval"]


def _address(raw: str) -> str:
    # Abstract sockets: systemd writes '@name', the kernel wants a leading NUL.
    return "\0" + raw[1:] if raw.startswith("@") else raw


def watchdog_interval(env: Optional[Mapping[str, str]] = None) -> Optional[float]:
    """WatchdogSec in seconds when systemd asked this process for keep-alives, else None."""
    env = os.environ if env is None else env
    usec = env.get("WATCHDOG_USEC")
    pid = env.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        value = int(usec)
    except ValueError:
        return None
    return value / 1e6 if value > 0 else None


class Notifier:
    """Keeps one unconnected datagram socket open; cheap enough to call every second."""

    def __init__(self, path: Optional[str] = None) -> None:
        self._path = path if path is not None else os.environ.get("NOTIFY_SOCKET")
        self._sock: Optional[socket.socket] = None
        self.sent = 0
        self.failed = 0

    @property
    def enabled(self) -> bool:
        return bool(self._path)

    def notify(self, *states: str) -> bool:
        if not self._path:
            return False
        message = "\n".join(states).encode()
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto(message, _address(self._path))
        except OSError:
            self.failed += 1
            return False
        self.sent += 1
        return True

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


_default: Optional[Notifier] = None


def notify(*states: str) -> bool:
    """Send states (e.g. "READY=1") to systemd; False when not under systemd or lost."""
    global _default
    if _default is None or _default._path != os.environ.get("NOTIFY_SOCKET"):
        _default = Notifier()
    return _default.notify(*states)
