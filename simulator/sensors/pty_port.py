"""A pseudo-terminal that plays a serial port, reachable through a stable symlink.

The simulator keeps both ends open: the master to talk, the slave in raw mode so no
echo or line editing touches the bytes. Unplugging closes both and removes the
symlink; replugging makes a fresh pty and points the symlink at it, as a USB adapter
coming back under /dev/serial/by-id does.
"""

import errno
import os
import tty
from typing import Optional


class PtyPort:
    def __init__(self, link: str) -> None:
        self.link = link
        self.master: Optional[int] = None
        self._slave: Optional[int] = None
        self.path: Optional[str] = None
        self.bytes_out = 0
        self.bytes_lost = 0

    @property
    def plugged(self) -> bool:
        return self.master is not None

    def plug(self) -> str:
        master, slave = os.openpty()
        tty.setraw(slave)
        os.set_blocking(master, False)
        self.master, self._slave, self.path = master, slave, os.ttyname(slave)
        tmp = f"{self.link}.tmp{os.getpid()}"
        if os.path.lexists(tmp):
            os.unlink(tmp)
        os.symlink(self.path, tmp)
        os.replace(tmp, self.link)  # atomic: a reader never sees a half-made link
        return self.path

    def unplug(self) -> None:
        if os.path.lexists(self.link):
            os.unlink(self.link)
        for fd in (self.master, self._slave):
            if fd is not None:
                os.close(fd)
        self.master = self._slave = None

    def write(self, data: bytes) -> None:
        """Write without blocking; bytes nobody reads are lost, as on a real line."""
        if self.master is None:
            self.bytes_lost += len(data)
            return
        try:
            sent = os.write(self.master, data)
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            if exc.errno != errno.EIO:
                raise
            sent = 0
        self.bytes_out += sent
        self.bytes_lost += len(data) - sent

    def read(self) -> bytes:
        if self.master is None:
            return b""
        try:
            return os.read(self.master, 4096)
        except (BlockingIOError, OSError):
            return b""
