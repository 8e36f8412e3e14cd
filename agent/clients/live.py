"""Live capture on the hotspot interface: AF_PACKET with a classic BPF filter.

The kernel runs the filter below on every frame and hands Python only ARP and
DHCP/BOOTP (UDP port 67 or 68, first fragments), so bulk traffic never wakes this
process. The socket is opened with protocol 0 (it receives nothing), the filter is
attached, and only then is it bound to the interface: no frame slips in unfiltered.
scapy is not imported on this path; frames go through the same `classify` as files.

    0  ldh [12]                  ethertype
    1  jeq #0x0806  -> 15        ARP: accept
    2  jeq #0x0800  else -> 14   not IPv4: drop
    3  ldb [23]                  IP protocol
    4  jeq #17      else -> 14   not UDP: drop
    5  ldh [20]                  flags + fragment offset
    6  jset #0x1fff -> 14        a later fragment: drop
    7  ldxb 4*([14]&0xf)         X = IP header length
    8  ldh [x+14]                UDP source port
    9  jeq #67 -> 15;  10 jeq #68 -> 15
   11  ldh [x+16]                UDP destination port
   12  jeq #67 -> 15;  13 jeq #68 -> 15
   14  ret #0                    drop
   15  ret #262144               accept the whole frame
"""

import ctypes
import errno
import os
import socket
import threading
import time
from typing import Callable, Dict, List, Optional, Tuple

from agent.clients.counter import INFRA, ClientCounter
from agent.clients.errors import CaptureError
from agent.clients.mac import parse_mac
from agent.clients.pcap import DLT_EN10MB, DLT_IEEE802_11_RADIO, classify

ETH_P_ALL = 0x0003
SO_ATTACH_FILTER = 26

BPF_ARP_DHCP: List[Tuple[int, int, int, int]] = [
    (0x28, 0, 0, 12),
    (0x15, 13, 0, 0x0806),
    (0x15, 0, 11, 0x0800),
    (0x30, 0, 0, 23),
    (0x15, 0, 9, 17),
    (0x28, 0, 0, 20),
    (0x45, 7, 0, 0x1FFF),
    (0xB1, 0, 0, 14),
    (0x48, 0, 0, 14),
    (0x15, 5, 0, 67),
    (0x15, 4, 0, 68),
    (0x48, 0, 0, 16),
    (0x15, 2, 0, 67),
    (0x15, 1, 0, 68),
    (0x06, 0, 0, 0),
    (0x06, 0, 0, 0x40000),
]


# For a monitor-mode interface (RadioTap): accept only 802.11 probe requests.
#   X = RadioTap length (little-endian at bytes 2-3); accept when frame control == 0x40
BPF_PROBE_REQ: List[Tuple[int, int, int, int]] = [
    (0x30, 0, 0, 3),  # ldb [3]
    (0x64, 0, 0, 8),  # lsh #8
    (0x07, 0, 0, 0),  # tax
    (0x30, 0, 0, 2),  # ldb [2]
    (0x4C, 0, 0, 0),  # or x
    (0x07, 0, 0, 0),  # tax
    (0x50, 0, 0, 0),  # ldb [x+0]
    (0x15, 0, 1, 0x40),  # jeq #0x40 (probe request)
    (0x06, 0, 0, 0x40000),
    (0x06, 0, 0, 0),
]


class _SockFilter(ctypes.Structure):
    _fields_ = [
        ("code", ctypes.c_uint16),
        ("jt", ctypes.c_uint8),
        ("jf", ctypes.c_uint8),
        ("k", ctypes.c_uint32),
    ]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_uint16), ("filter", ctypes.POINTER(_SockFilter))]


def attach_filter(sock: socket.socket, program: List[Tuple[int, int, int, int]]) -> None:
    array = (_SockFilter * len(program))(*[_SockFilter(*ins) for ins in program])
    fprog = _SockFprog(len(program), array)
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, bytes(fprog))  # type: ignore[arg-type]


def interface_mac(interface: str) -> Optional[bytes]:
    try:
        with open(f"/sys/class/net/{interface}/address", encoding="ascii") as fh:
            return parse_mac(fh.read())
    except OSError:
        return None


class LiveCapture:
    """Reads filtered frames from one interface into a ClientCounter."""

    def __init__(
        self,
        interface: str,
        counter: ClientCounter,
        clock: Callable[[], float] = time.time,
        monitor: bool = False,
        lock: Optional[threading.Lock] = None,
    ) -> None:
        self.interface = interface
        self.counter = counter
        self.clock = clock
        # A monitor-mode interface delivers RadioTap + 802.11; keep only probe requests.
        self.linktype = DLT_IEEE802_11_RADIO if monitor else DLT_EN10MB
        self.program = BPF_PROBE_REQ if monitor else BPF_ARP_DHCP
        self.lock = lock or threading.Lock()
        self.frames = 0
        self.matched = 0
        self._sock: Optional[socket.socket] = None

    def open(self) -> None:
        if not os.path.exists(f"/sys/class/net/{self.interface}"):
            raise CaptureError(f"interface {self.interface} does not exist")
        try:
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        except PermissionError as exc:
            raise CaptureError("live capture needs root or CAP_NET_RAW") from exc
        try:
            attach_filter(sock, self.program)
            sock.bind((self.interface, ETH_P_ALL))
        except OSError as exc:
            sock.close()
            raise CaptureError(f"cannot capture on {self.interface}: {exc.strerror}") from exc
        sock.settimeout(0.5)
        self._sock = sock
        own = interface_mac(self.interface)
        if own is not None:  # the box's own address is infrastructure, not a client
            with self.lock:
                self.counter.see(INFRA, own, self.clock())

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def poll(self) -> int:
        """Read until the socket is idle for its timeout; returns frames read."""
        if self._sock is None:
            raise CaptureError(f"capture on {self.interface} is not open")
        buf = bytearray(2048)
        view = memoryview(buf)
        n = 0
        while True:
            try:
                size = self._sock.recv_into(view)
            except socket.timeout:
                if not os.path.exists(f"/sys/class/net/{self.interface}"):
                    raise CaptureError(f"interface {self.interface} went away") from None
                return n
            except OSError as exc:
                if exc.errno in (errno.ENETDOWN, errno.ENODEV, errno.ENXIO):
                    raise CaptureError(f"interface {self.interface} went away") from exc
                raise CaptureError(f"capture on {self.interface}: {exc.strerror}") from exc
            n += 1
            self.frames += 1
            hit = classify(buf, 0, size, self.linktype)
            if hit is not None:
                self.matched += 1
                with self.lock:
                    self.counter.see(hit[0], hit[1], self.clock())
            if n >= 256:  # hand back control now and then under a DHCP storm
                return n

    def run_for(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.poll()

    def stats(self) -> Dict[str, int]:
        return {"frames": self.frames, "frames_matched": self.matched}

