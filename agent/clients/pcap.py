"""A fast capture-file reader that decodes only the header fields the counter needs.

pcap (both byte orders, micro- and nanosecond) and pcapng (SHB, IDB, EPB, SPB and the
obsolete PB; other blocks are skipped) are walked with struct over one buffer (bytes
or an mmap), without copying frames. `classify` looks at a few bytes per frame:

    Ethernet (DLT 1), Linux cooked (113, 276)
      ARP (0x0806), Ethernet/IPv4 -> CONNECTED, sender hardware address
      IPv4 UDP BOOTP op 1     -> CONNECTED, chaddr (the client, even through a relay)
      IPv4 UDP BOOTP op 2     -> INFRA, Ethernet source (the DHCP server)
    raw 802.11 (105), behind RadioTap (127), Prism (119), AVS (163) or PPI (192)
      management subtype 4    -> NEARBY, addr2 (probe request transmitter)
                                 frames the radio flags as bad FCS are skipped

Everything else is one or two byte compares and a `return None`. A corrupt file raises
CaptureError naming the frame and byte offset; one that ends inside a record raises its
subclass CaptureTruncated, after yielding every whole frame before the cut. A pcapng
interface whose link type is not decoded here has its frames left out and tallied in
`skipped` (the file is refused only when no interface is decoded, as a pcap file is).
"""

import mmap
import struct
from typing import Dict, Iterator, List, Optional, Tuple, Union

from agent.clients.counter import CONNECTED, INFRA, NEARBY
from agent.clients.errors import CaptureError, CaptureTruncated
from agent.clients.mac import redact_macs

Buffer = Union[bytes, bytearray, memoryview, mmap.mmap]
Frame = Tuple[float, int, int, int]  # (ts, linktype, offset, captured length)

DLT_EN10MB = 1
DLT_IEEE802_11 = 105
DLT_LINUX_SLL = 113
DLT_PRISM_HEADER = 119
DLT_IEEE802_11_RADIO = 127
DLT_IEEE802_11_RADIO_AVS = 163
DLT_PPI = 192
DLT_LINUX_SLL2 = 276
SUPPORTED = {
    DLT_EN10MB,
    DLT_IEEE802_11,
    DLT_LINUX_SLL,
    DLT_PRISM_HEADER,
    DLT_IEEE802_11_RADIO,
    DLT_IEEE802_11_RADIO_AVS,
    DLT_PPI,
    DLT_LINUX_SLL2,
}

MAX_FRAME = 262144 * 4  # far above any snaplen tools use; larger means corruption

_U16 = struct.Struct(">H")
_PCAP_MAGIC = {
    b"\xd4\xc3\xb2\xa1": ("<", 1e-6),
    b"\xa1\xb2\xc3\xd4": (">", 1e-6),
    b"\x4d\x3c\xb2\xa1": ("<", 1e-9),
    b"\xa1\xb2\x3c\x4d": (">", 1e-9),
}
_PCAPNG_SHB = b"\x0a\x0d\x0d\x0a"


class SkippedInterface:
    """A pcapng interface whose link type is not decoded, and how many frames it had.

    `interface` numbers the file's interface blocks from 0 across sections, as
    Wireshark's frame.interface_id does; `name` is its if_name option (MAC-redacted).
    """

    __slots__ = ("frames", "interface", "linktype", "name")

    def __init__(self, interface: int, linktype: int, name: str) -> None:
        self.interface = interface
        self.linktype = linktype
        self.name = name
        self.frames = 0

    def asdict(self) -> Dict[str, Union[int, str]]:
        return {
            "interface": self.interface,
            "linktype": self.linktype,
            "name": self.name,
            "frames": self.frames,
        }


def frames(buf: Buffer, skipped: Optional[List[SkippedInterface]] = None) -> Iterator[Frame]:
    """Every frame of a pcap or pcapng buffer; CaptureError on corruption.

    Frames of pcapng interfaces with a link type not in SUPPORTED are not yielded; each
    such interface is appended to `skipped` (when given) with its frame count.
    """
    if len(buf) < 4:
        raise CaptureError(f"not a capture file: only {len(buf)} bytes")
    magic = bytes(buf[0:4])
    if magic in _PCAP_MAGIC:
        return _pcap_frames(buf, *_PCAP_MAGIC[magic])
    if magic == _PCAPNG_SHB:
        return _pcapng_frames(buf, [] if skipped is None else skipped)
    raise CaptureError(f"not a pcap or pcapng file (starts with {magic.hex()})")


def _zero_tail(buf: Buffer, off: int, number: int) -> CaptureTruncated:
    """A file whose size grew before its data reached the disk (a box that lost power)
    ends in zeros: it is cut where the zeros start."""
    return CaptureTruncated(
        f"the file ends in {len(buf) - off} zero bytes from byte {off}, after frame"
        f" {number} (written up to there, then power lost?)",
        off,
        number,
    )


def _all_zero(buf: Buffer, off: int) -> bool:
    return not bytes(buf[off:]).strip(b"\0")


def _pcap_frames(buf: Buffer, order: str, unit: float) -> Iterator[Frame]:
    if len(buf) < 24:
        raise CaptureError("pcap file cut short inside its 24-byte header")
    linktype = struct.unpack_from(order + "I", buf, 20)[0] & 0xFFFF
    if linktype not in SUPPORTED:
        raise CaptureError(f"pcap link type {linktype} is not one the counter decodes")
    record = struct.Struct(order + "IIII")
    size = len(buf)
    off = 24
    number = 0
    while off < size:
        number += 1
        if off + 16 > size:
            raise CaptureTruncated(
                f"frame {number}: cut short in its record header at byte {off}", off, number - 1
            )
        sec, frac, caplen, _origlen = record.unpack_from(buf, off)
        if caplen == 0 and sec == 0 and _all_zero(buf, off):
            raise _zero_tail(buf, off, number - 1)
        if caplen > MAX_FRAME:
            raise CaptureError(f"frame {number}: corrupt record at byte {off} ({caplen} bytes)")
        if off + 16 + caplen > size:
            raise CaptureTruncated(
                f"frame {number}: cut short at byte {size}, inside its {caplen} bytes"
                f" from byte {off + 16} (file truncated?)",
                off,
                number - 1,
            )
        off += 16
        yield sec + frac * unit, linktype, off, caplen
        off += caplen


def _idb_options(options: bytes, order: str) -> Tuple[float, str]:
    """(if_tsresol, if_name) from an IDB's options; microseconds and "" when absent."""
    unit, name = 1e-6, ""
    at = 0
    while at + 4 <= len(options):
        code, length = struct.unpack_from(order + "HH", options, at)
        if code == 0:
            break
        if code == 9 and length >= 1 and at + 4 < len(options):
            value = options[at + 4]
            unit = 2.0 ** -(value & 0x7F) if value & 0x80 else 10.0**-value
        elif code == 2:
            raw = options[at + 4 : at + 4 + min(length, 64)]
            name = redact_macs(raw.decode("utf-8", "replace").rstrip("\0"))
        at += 4 + ((length + 3) & ~3)
    return unit, name


def _pcapng_frames(buf: Buffer, skipped: List[SkippedInterface]) -> Iterator[Frame]:
    size = len(buf)
    off = 0
    number = 0
    head = trail = epb = struct.Struct("<II")
    # (linktype, snaplen, unit, skipped or None) per interface id in this section
    interfaces: List[Tuple[int, int, float, Optional[SkippedInterface]]] = []
    ifindex = 0  # interface blocks so far, across sections
    decoded = False  # some interface has a link type decoded here
    while off < size:
        if off + 12 > size:
            if off == 0:
                raise CaptureError("pcapng file cut short inside its section header block")
            raise CaptureTruncated(
                f"pcapng cut short in a block header at byte {off} (after frame {number})",
                off,
                number,
            )
        if buf[off] == 0x0A and bytes(buf[off : off + 4]) == _PCAPNG_SHB:
            bom = bytes(buf[off + 8 : off + 12])
            if bom == b"\x4d\x3c\x2b\x1a":
                order = "<"
            elif bom == b"\x1a\x2b\x3c\x4d":
                order = ">"
            else:
                raise CaptureError(f"pcapng section at byte {off} has a bad byte-order magic")
            head, trail = struct.Struct(order + "II"), struct.Struct(order + "I")
            epb = struct.Struct(order + "IIIII")
            interfaces = []
        btype, blen = head.unpack_from(buf, off)
        if blen == 0 and btype == 0 and off > 0 and _all_zero(buf, off):
            raise _zero_tail(buf, off, number)
        if blen < 12 or blen & 3 or blen > MAX_FRAME + 64:
            raise CaptureError(f"pcapng block at byte {off} has a corrupt length {blen}")
        if off + blen > size:
            if off == 0:
                raise CaptureError("pcapng file cut short inside its section header block")
            raise CaptureTruncated(
                f"pcapng cut short at byte {size}, inside the {blen}-byte block from byte {off}"
                f" (after frame {number}; file truncated?)",
                off,
                number,
            )
        if trail.unpack_from(buf, off + blen - 4)[0] != blen:
            raise CaptureError(f"pcapng block at byte {off}: trailing length does not match")
        body = off + 8
        if btype == 6:  # Enhanced Packet Block, the common case first
            number += 1
            ifid, hi, lo, caplen, _orig = epb.unpack_from(buf, body)
            if ifid >= len(interfaces):
                raise CaptureError(f"frame {number}: unknown interface {ifid} at byte {off}")
            linktype, _snaplen, unit, skip = interfaces[ifid]
            if body + 20 + caplen > off + blen - 4:
                raise CaptureError(f"frame {number}: captured length overruns its block")
            if skip is None:
                yield ((hi << 32) | lo) * unit, linktype, body + 20, caplen
            else:
                skip.frames += 1
        elif btype == 1:  # Interface Description Block
            order = "<" if head.format.startswith("<") else ">"
            if blen < 20:
                raise CaptureError(f"pcapng interface block at byte {off} is too short")
            linktype, _res, snaplen = struct.unpack_from(order + "HHI", buf, body)
            unit, name = _idb_options(bytes(buf[body + 8 : off + blen - 4]), order)
            skip = None
            if linktype in SUPPORTED:
                decoded = True
            else:
                skip = SkippedInterface(ifindex, linktype, name)
                skipped.append(skip)
            interfaces.append((linktype, snaplen, unit, skip))
            ifindex += 1
        elif btype in (2, 3):
            number += 1
            order = "<" if head.format.startswith("<") else ">"
            if not interfaces:
                raise CaptureError(f"frame {number}: packet before any interface block")
            if btype == 3:  # Simple Packet Block: first interface, no timestamp
                linktype, snaplen, unit, skip = interfaces[0]
                origlen = struct.unpack_from(order + "I", buf, body)[0]
                caplen = min(origlen, blen - 16, snaplen or origlen)
                ts, start = 0.0, body + 4
            else:  # obsolete Packet Block
                ifid, _drops, hi, lo, caplen = struct.unpack_from(order + "HHIII", buf, body)
                if ifid >= len(interfaces):
                    raise CaptureError(f"frame {number}: unknown interface {ifid} at byte {off}")
                linktype, snaplen, unit, skip = interfaces[ifid]
                ts, start = ((hi << 32) | lo) * unit, body + 20
                if start + caplen > off + blen - 4:
                    raise CaptureError(f"frame {number}: captured length overruns its block")
            if skip is None:
                yield ts, linktype, start, caplen
            else:
                skip.frames += 1
        off += blen
    if skipped and not decoded:
        types = ", ".join(str(s.linktype) for s in skipped)
        raise CaptureError(f"pcapng link type {types} is not one the counter decodes")


def classify(buf: Buffer, off: int, length: int, linktype: int) -> Optional[Tuple[int, bytes]]:
    """(kind, mac) for a frame the counter cares about, None for everything else."""
    end = off + length
    if linktype == DLT_EN10MB:
        if length < 14:
            return None
        src = off + 6
        et = (buf[off + 12] << 8) | buf[off + 13]
        p = off + 14
    elif linktype == DLT_IEEE802_11_RADIO:
        if length < 8:
            return None
        p = off + (buf[off + 2] | (buf[off + 3] << 8))
        if p + 16 > end or buf[p] != 0x40:
            return None
        if _radiotap_bad_fcs(buf, off, p):
            return None
        return NEARBY, bytes(buf[p + 10 : p + 16])
    elif linktype == DLT_IEEE802_11:
        if length < 16 or buf[off] != 0x40:
            return None
        return NEARBY, bytes(buf[off + 10 : off + 16])
    elif linktype == DLT_LINUX_SLL:
        if length < 16 or buf[off + 4 : off + 6] != b"\x00\x06":
            return None
        src, et, p = off + 6, (buf[off + 14] << 8) | buf[off + 15], off + 16
    elif linktype == DLT_LINUX_SLL2:
        if length < 20 or buf[off + 11] != 6:
            return None
        src, et, p = off + 12, (buf[off] << 8) | buf[off + 1], off + 20
    elif linktype == DLT_PPI:
        return _classify_ppi(buf, off, length)
    elif linktype in (DLT_PRISM_HEADER, DLT_IEEE802_11_RADIO_AVS):
        p = off + _prism_avs_length(buf, off, length, linktype)
        if p == off or p + 16 > end or buf[p] != 0x40:
            return None
        return NEARBY, bytes(buf[p + 10 : p + 16])
    else:
        return None
    while et in (0x8100, 0x88A8) and p + 4 <= end:  # VLAN tags, stacked or not
        et = (buf[p + 2] << 8) | buf[p + 3]
        p += 4
    if et == 0x0806:
        # htype 1 (Ethernet), ptype 0x0800 (IPv4), hlen 6, plen 4; sender hardware at +8
        if (
            p + 28 > end
            or buf[p] != 0
            or buf[p + 1] != 1
            or buf[p + 2] != 0x08
            or buf[p + 3] != 0
            or buf[p + 4] != 6
            or buf[p + 5] != 4
        ):
            return None
        return CONNECTED, bytes(buf[p + 8 : p + 14])
    if et != 0x0800 or p + 20 > end or buf[p + 9] != 17:
        return None
    if (buf[p + 6] & 0x1F) or buf[p + 7]:  # a later fragment: no UDP header here
        return None
    u = p + (buf[p] & 0x0F) * 4
    if u + 8 + 34 > end:
        return None
    sport = (buf[u] << 8) | buf[u + 1]
    dport = (buf[u + 2] << 8) | buf[u + 3]
    if not (sport in (67, 68) and dport in (67, 68)):
        return None
    b = u + 8
    if buf[b + 1] != 1 or buf[b + 2] != 6:  # htype Ethernet, hlen 6
        return None
    if buf[b] == 1:
        return CONNECTED, bytes(buf[b + 28 : b + 34])
    if buf[b] == 2:
        return INFRA, bytes(buf[src : src + 6])
    return None


def _radiotap_bad_fcs(buf: Buffer, off: int, end: int) -> bool:
    """True when the RadioTap Flags field says the frame failed its FCS check."""
    present = buf[off + 4] | (buf[off + 5] << 8) | (buf[off + 6] << 16) | (buf[off + 7] << 24)
    if not present & 0x02:  # no Flags field
        return False
    p = off + 8
    word = present
    while word & 0x80000000 and p + 4 <= end:  # extended present bitmaps
        word = buf[p + 3] << 24
        p += 4
    if present & 0x01:  # TSFT: 8 bytes, 8-aligned from the header start
        p = off + (((p - off) + 7) & ~7) + 8
    return p < end and bool(buf[p] & 0x40)


_AVS_MAGIC = (b"\x80\x21\x10\x01", b"\x80\x21\x10\x02")  # AVS versions 1 and 2


def _prism_avs_length(buf: Buffer, off: int, length: int, linktype: int) -> int:
    """Length of a Prism or AVS header before the 802.11 frame; 0 when it is not sane.

    AVS: version then length, both big-endian u32. Prism: msgcode then msglen in the
    capturing host's byte order (little-endian in practice; big-endian is tried when the
    little-endian value does not fit). Some drivers put an AVS header under DLT 119.
    """
    if length < 8:
        return 0
    if linktype == DLT_IEEE802_11_RADIO_AVS or bytes(buf[off : off + 4]) in _AVS_MAGIC:
        hlen = (buf[off + 4] << 24) | (buf[off + 5] << 16) | (buf[off + 6] << 8) | buf[off + 7]
    else:
        hlen = buf[off + 4] | (buf[off + 5] << 8) | (buf[off + 6] << 16) | (buf[off + 7] << 24)
        if not 8 <= hlen <= length:
            hlen = (buf[off + 4] << 24) | (buf[off + 5] << 16) | (buf[off + 6] << 8) | buf[off + 7]
    return hlen if 8 <= hlen <= length else 0


def _classify_ppi(buf: Buffer, off: int, length: int) -> Optional[Tuple[int, bytes]]:
    """PPI: version, flags, little-endian u16 length at +2 and u32 inner DLT at +4.

    The inner frame (802.11 normally, DLT 105) is classified as its own link type; a PPI
    802.11-Common field whose flags mark the FCS invalid drops the frame.
    """
    if length < 8:
        return None
    hlen = buf[off + 2] | (buf[off + 3] << 8)
    inner = buf[off + 4] | (buf[off + 5] << 8) | (buf[off + 6] << 16) | (buf[off + 7] << 24)
    if hlen < 8 or hlen > length or inner == DLT_PPI or inner not in SUPPORTED:
        return None
    end = off + hlen
    p = off + 8
    aligned = buf[off + 1] & 0x01  # fields padded to 32 bits
    while p + 4 <= end:
        ftype = buf[p] | (buf[p + 1] << 8)
        flen = buf[p + 2] | (buf[p + 3] << 8)
        # 802.11-Common: flags (little-endian u16) at +8 of its data; 0x0004 = FCS invalid
        if ftype == 2 and flen >= 10 and p + 14 <= end and buf[p + 12] & 0x04:
            return None
        p += 4 + flen
        if aligned:
            p = off + (((p - off) + 3) & ~3)
    return classify(buf, end, length - hlen, inner)
