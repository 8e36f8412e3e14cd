"""The bootloader side of STK500v1, as Optiboot 4.4 answers it, on a pseudo-terminal.

`Bootloader` is a pure state machine (bytes in, bytes out), written from Optiboot's
source rather than from the flasher's framer, so the two are independent; avrdude
flashing through it (tests/flasher) shows it speaks the protocol as avrdude expects.

Where Optiboot restarts into the application on a request that does not end in 0x20,
this one answers 0x15 (NOSYNC), as the STK500v1 spec says; a flasher must resync
either way.

Faults on demand (`faults`):
    no-sync          never answer anything
    corrupt-reply    from the first PROG_PAGE on, every answer starts with a noise byte
    corrupt-once     only the first PROG_PAGE's answer starts with a noise byte
    verify-mismatch  a bad flash cell: bit 0 of the first byte of the second page written
                     reads back flipped
"""

import os
import select
import struct
import tty
from dataclasses import dataclass, field
from typing import Callable, Optional, Tuple

INSYNC, OK, NOSYNC, EOP = 0x14, 0x10, 0x15, 0x20
GET_SYNC, GET_PARAMETER, SET_DEVICE, SET_DEVICE_EXT = 0x30, 0x41, 0x42, 0x45
ENTER_PROGMODE, LEAVE_PROGMODE, LOAD_ADDRESS, UNIVERSAL = 0x50, 0x51, 0x55, 0x56
PROG_PAGE, READ_PAGE, READ_SIGN = 0x64, 0x74, 0x75

OPTIBOOT_MAJOR, OPTIBOOT_MINOR = 4, 4
FAULTS = ("none", "no-sync", "corrupt-reply", "corrupt-once", "verify-mismatch")
NOISE = 0xE0  # what a framing error on a real line often reads as

# Bytes of arguments after the command byte, for the fixed-length requests.
_FIXED_ARGS = {GET_PARAMETER: 1, SET_DEVICE: 20, SET_DEVICE_EXT: 5, LOAD_ADDRESS: 2,
               UNIVERSAL: 4}


def split_request(buf: bytes) -> Tuple[int, Optional[Tuple[int, bytes, bool]]]:
    """(used, (command, arguments, ended_with_eop)) for the request at the start of buf.

    used 0 means the request is not complete yet.
    """
    if not buf:
        return 0, None
    cmd = buf[0]
    if cmd in (PROG_PAGE, READ_PAGE):
        if len(buf) < 4:
            return 0, None
        (length,) = struct.unpack(">H", buf[1:3])
        nargs = 3 + (length if cmd == PROG_PAGE else 0)
    else:
        nargs = _FIXED_ARGS.get(cmd, 0)
    total = 1 + nargs + 1
    if len(buf) < total:
        return 0, None
    return total, (cmd, bytes(buf[1 : 1 + nargs]), buf[total - 1] == EOP)


@dataclass
class Bootloader:
    flash_size: int = 32768
    page_size: int = 128
    signature: bytes = b"\x1e\x95\x0f"
    fault: str = "none"
    flash: bytearray = field(default_factory=bytearray)
    address: int = 0
    pages_written: int = 0
    sessions_ended: int = 0
    _pending: bytearray = field(default_factory=bytearray)
    _corrupted: int = 0

    def __post_init__(self) -> None:
        if self.fault not in FAULTS:
            raise ValueError(f"unknown fault {self.fault!r}; one of {', '.join(FAULTS)}")
        if not self.flash:
            self.flash = bytearray(b"\xff" * self.flash_size)

    def feed(self, data: bytes) -> bytes:
        """Take bytes from the host; return every byte the bootloader answers."""
        self._pending += data
        out = bytearray()
        while True:
            used, request = split_request(bytes(self._pending))
            if not used or request is None:
                break
            del self._pending[:used]
            out += self._answer(*request)
        return bytes(out) if self.fault != "no-sync" else b""

    def _answer(self, cmd: int, args: bytes, eop: bool) -> bytes:
        if not eop:
            self._pending.clear()
            return bytes([NOSYNC])
        body = b""
        if cmd == GET_PARAMETER:
            body = bytes([{0x81: OPTIBOOT_MAJOR, 0x82: OPTIBOOT_MINOR}.get(args[0], 0x03)])
        elif cmd == LOAD_ADDRESS:
            self.address = struct.unpack("<H", args)[0] * 2
        elif cmd == UNIVERSAL:
            body = b"\x00"
        elif cmd == PROG_PAGE:
            self._program(args[3:])
        elif cmd == READ_PAGE:
            (length,) = struct.unpack(">H", args[:2])
            body = bytes(self.flash[self.address : self.address + length])
            self.address += length
        elif cmd == READ_SIGN:
            body = self.signature
        elif cmd == LEAVE_PROGMODE:
            self.sessions_ended += 1
        reply = bytes([INSYNC]) + body + bytes([OK])
        if cmd == PROG_PAGE and self._corrupts():
            reply = bytes([NOISE]) + reply[1:]
        return reply

    def _corrupts(self) -> bool:
        self._corrupted += 1
        return self.fault == "corrupt-reply" or (self.fault == "corrupt-once"
                                                 and self._corrupted == 1)

    def _program(self, data: bytes) -> None:
        # Optiboot erases and writes the whole page the address falls in.
        start = self.address - self.address % self.page_size
        page = bytearray(b"\xff" * self.page_size)
        page[self.address - start : self.address - start + len(data)] = data
        self.pages_written += 1
        if self.fault == "verify-mismatch" and self.pages_written == 2:
            page[self.address - start] ^= 0x01
        if start + self.page_size <= self.flash_size:
            self.flash[start : start + self.page_size] = page


def open_pty(link: Optional[str] = None) -> Tuple[int, int, str]:
    """A raw pseudo-terminal: (master fd, slave fd, slave path); the slave stays open
    here so the master never sees a hang-up between two clients."""
    master, slave = os.openpty()
    tty.setraw(slave)
    path = os.ttyname(slave)
    if link:
        if os.path.lexists(link):
            os.unlink(link)
        os.symlink(path, link)
    return master, slave, path


def serve(boot: Bootloader, master: int, stop: Callable[[], bool],
          on_session_end: Callable[[Bootloader], None] = lambda _b: None) -> None:
    """Answer the host on `master` until `stop()` says so."""
    ended = boot.sessions_ended
    while not stop():
        ready, _, _ = select.select([master], [], [], 0.1)
        if not ready:
            continue
        try:
            data = os.read(master, 4096)
        except OSError:
            continue  # EIO while no client has the slave open
        reply = boot.feed(data)
        if reply:
            os.write(master, reply)
        if boot.sessions_ended != ended:
            ended = boot.sessions_ended
            on_session_end(boot)
