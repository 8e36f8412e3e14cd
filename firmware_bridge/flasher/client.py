"""An STK500v1 client over any pyserial-like port: the framer in stk500.py, plus I/O.

The client knows the order of requests and how long to wait; it knows nothing about
boards or technicians (flash.py turns its errors into advice). A reply that breaks the
protocol is retried after a fresh sync, a few times, because a noisy cable corrupts a
byte now and then; each retry is counted, and a page only counts once it reads back.
"""

import time
from dataclasses import dataclass
from typing import Callable, Optional, Protocol, TypeVar

from firmware_bridge.flasher import stk500
from firmware_bridge.flasher.errors import ProtocolError

T = TypeVar("T")


class SerialLike(Protocol):
    timeout: Optional[float]

    def write(self, data: bytes) -> Optional[int]: ...

    def read(self, size: int = 1) -> bytes: ...

    def reset_input_buffer(self) -> None: ...


_EXPLAIN = {
    stk500.NOSYNC: "the bootloader lost the request's framing",
    stk500.BAD_START: "noise on the line, or the wrong baud",
    stk500.BAD_END: "the bootloader refused the request",
}


class NoReply(ProtocolError):
    """Nothing (or too little) came back before the reply timeout."""


@dataclass
class ClientCounters:
    requests: int = 0
    sync_attempts: int = 0
    retries: int = 0


class Stk500Client:
    def __init__(self, port: SerialLike, *, reply_timeout: float = 1.0,
                 retries: int = 2, clock: Callable[[], float] = time.monotonic) -> None:
        self.port = port
        self.reply_timeout = reply_timeout
        self.retries = retries
        self.clock = clock
        self.counters = ClientCounters()
        self.port.timeout = 0.05  # short reads; the deadline lives here

    # -- one request -------------------------------------------------------------------
    def _receive(self, req: stk500.Request, timeout: float) -> bytes:
        buf = bytearray()
        deadline = self.clock() + timeout
        while True:
            result = stk500.decode_reply(bytes(buf), req.reply_len)
            if result.used:
                if result.frame is not None:
                    return result.frame
                raise ProtocolError(
                    f"{req.name} was answered {buf[:8].hex(' ')}, not 14 .. 10 "
                    f"({_EXPLAIN.get(result.error or '', result.error)})"
                )
            if self.clock() >= deadline:
                got = f"only {buf.hex(' ')}" if buf else "nothing"
                raise NoReply(f"{req.name}: no reply within {timeout:.1f}s (got {got})")
            buf += self.port.read(req.reply_len + 2 - len(buf))

    def transact(self, req: stk500.Request, timeout: Optional[float] = None) -> bytes:
        self.counters.requests += 1
        self.port.write(req.frame)
        return self._receive(req, self.reply_timeout if timeout is None else timeout)

    # -- sync --------------------------------------------------------------------------
    def sync(self, attempts: int, wait: float = 0.25) -> bool:
        """Try GET_SYNC up to `attempts` times; True once two in a row are answered.

        The second request proves the stream is aligned: a late answer to an earlier
        attempt would otherwise be read as the answer to the next request.
        """
        for _ in range(attempts):
            self.counters.sync_attempts += 1
            self.port.reset_input_buffer()
            try:
                self.transact(stk500.get_sync(), timeout=wait)
                time.sleep(0.02)
                self.port.reset_input_buffer()
                self.transact(stk500.get_sync(), timeout=wait)
                return True
            except ProtocolError:
                continue
        return False

    def _retrying(self, what: str, action: Callable[[], T]) -> T:
        last: Optional[ProtocolError] = None
        for attempt in range(self.retries + 1):
            if attempt:
                self.counters.retries += 1
                if not self.sync(attempts=3):
                    break
            try:
                return action()
            except ProtocolError as exc:
                last = exc
        assert last is not None
        raise ProtocolError(f"{what}: {last}") from last

    # -- what a flash needs ------------------------------------------------------------
    def read_signature(self) -> bytes:
        return self._retrying("reading the chip signature",
                              lambda: self.transact(stk500.read_sign()))

    def parameter(self, parameter: int) -> int:
        return self._retrying(f"reading parameter {parameter:#x}",
                              lambda: self.transact(stk500.get_parameter(parameter)))[0]

    def enter_progmode(self) -> None:
        self._retrying("entering programming mode",
                       lambda: self.transact(stk500.enter_progmode()))

    def write_page(self, address: int, data: bytes) -> None:
        def action() -> None:
            self.transact(stk500.load_address(address))
            self.transact(stk500.prog_page(data))
        self._retrying(f"writing the page at {address:#06x}", action)

    def read_page(self, address: int, length: int) -> bytes:
        def action() -> bytes:
            self.transact(stk500.load_address(address))
            return self.transact(stk500.read_page(length))
        return self._retrying(f"reading the page at {address:#06x}", action)

    def leave_progmode(self) -> None:
        """Ends the session; the bootloader then starts the application."""
        self.transact(stk500.leave_progmode())
