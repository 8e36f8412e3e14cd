"""Minimal pcap and pcapng writers for the simulator (microsecond timestamps)."""

import struct
from typing import BinaryIO, Iterable, Tuple

Packet = Tuple[float, bytes]


def write_pcap(out: BinaryIO, linktype: int, packets: Iterable[Packet]) -> int:
    out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, linktype))
    n = 0
    for ts, data in packets:
        usec = round(ts * 1e6)
        out.write(struct.pack("<IIII", usec // 1_000_000, usec % 1_000_000, len(data), len(data)))
        out.write(data)
        n += 1
    return n


def _block(btype: int, body: bytes) -> bytes:
    body += b"\x00" * (-len(body) % 4)
    length = len(body) + 12
    return struct.pack("<II", btype, length) + body + struct.pack("<I", length)


def write_pcapng(out: BinaryIO, linktype: int, packets: Iterable[Packet]) -> int:
    out.write(_block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)))
    # if_tsresol = 6 (microseconds), written explicitly so the reader's option walk is used
    options = struct.pack("<HHB3x", 9, 1, 6) + struct.pack("<HH", 0, 0)
    out.write(_block(1, struct.pack("<HHI", linktype, 0, 65535) + options))
    n = 0
    for ts, data in packets:
        usec = round(ts * 1e6)
        head = struct.pack("<IIIII", 0, usec >> 32, usec & 0xFFFFFFFF, len(data), len(data))
        out.write(_block(6, head + data))
        n += 1
    return n
