"""STK500 version 1, the host side, as pure functions over bytes (no port I/O).

Optiboot and ATmegaBOOT speak the subset avrdude's `arduino` programmer uses. Every
request ends with CRC_EOP (0x20, a space, not a checksum); every answer is framed::

    request:  cmd [args ...] 0x20
    reply:    0x14 (INSYNC) [payload: a fixed length per command] 0x10 (OK)

    GET_SYNC        30 20                          -> 14 10
    GET_PARAMETER   41 pp 20                       -> 14 vv 10
    ENTER_PROGMODE  50 20                          -> 14 10
    LEAVE_PROGMODE  51 20                          -> 14 10   (bootloader starts the app)
    LOAD_ADDRESS    55 lo hi 20                    -> 14 10   (a WORD address: byte/2)
    PROG_PAGE       64 nh nl 'F' data[n] 20        -> 14 10   (n bytes, big-endian count)
    READ_PAGE       74 nh nl 'F' 20                -> 14 data[n] 10
    READ_SIGN       75 20                          -> 14 s0 s1 s2 10

A bootloader that lost framing answers 0x15 (NOSYNC), or nothing at all (Optiboot
restarts into the application when a request does not end in 0x20).
`decode_reply` follows firmware_bridge.framing: `used` 0 means "need more bytes".
"""

import struct
from dataclasses import dataclass
from typing import Optional

from firmware_bridge.framing import Decoded

STK_OK = 0x10
STK_FAILED = 0x11
STK_UNKNOWN = 0x12
STK_NODEVICE = 0x13
STK_INSYNC = 0x14
STK_NOSYNC = 0x15
CRC_EOP = 0x20

STK_GET_SYNC = 0x30
STK_GET_PARAMETER = 0x41
STK_SET_DEVICE = 0x42
STK_SET_DEVICE_EXT = 0x45
STK_ENTER_PROGMODE = 0x50
STK_LEAVE_PROGMODE = 0x51
STK_CHIP_ERASE = 0x52
STK_LOAD_ADDRESS = 0x55
STK_UNIVERSAL = 0x56
STK_PROG_PAGE = 0x64
STK_READ_PAGE = 0x74
STK_READ_SIGN = 0x75

PARM_SW_MAJOR = 0x81
PARM_SW_MINOR = 0x82

MEM_FLASH = ord("F")
MAX_BLOCK = 256            # largest page any STK500v1 bootloader we know accepts
MAX_WORD_ADDRESS = 0xFFFF  # 128 KiB; bigger chips need the extended address byte

# Reply errors, in the `Decoded.error` slot.
NOSYNC = "nosync"        # the bootloader said 0x15: it lost the request's framing
BAD_START = "bad-start"  # the first byte is neither INSYNC nor NOSYNC
BAD_END = "bad-end"      # INSYNC and payload, then not OK (FAILED, or noise)


@dataclass(frozen=True)
class Request:
    """One request: its bytes, and how many payload bytes its reply carries."""

    name: str
    frame: bytes
    reply_len: int = 0


def get_sync() -> Request:
    return Request("GET_SYNC", bytes([STK_GET_SYNC, CRC_EOP]))


def get_parameter(parameter: int) -> Request:
    return Request("GET_PARAMETER", bytes([STK_GET_PARAMETER, parameter & 0xFF, CRC_EOP]), 1)


def enter_progmode() -> Request:
    return Request("ENTER_PROGMODE", bytes([STK_ENTER_PROGMODE, CRC_EOP]))


def leave_progmode() -> Request:
    return Request("LEAVE_PROGMODE", bytes([STK_LEAVE_PROGMODE, CRC_EOP]))


def read_sign() -> Request:
    return Request("READ_SIGN", bytes([STK_READ_SIGN, CRC_EOP]), 3)


def load_address(byte_address: int) -> Request:
    """Set the address for the next page; the wire carries it in 16-bit words."""
    if byte_address % 2 or not 0 <= byte_address // 2 <= MAX_WORD_ADDRESS:
        raise ValueError(f"flash address {byte_address:#x} is odd or beyond 128 KiB")
    return Request("LOAD_ADDRESS", bytes([STK_LOAD_ADDRESS])
                   + struct.pack("<H", byte_address // 2) + bytes([CRC_EOP]))


def prog_page(data: bytes, memtype: int = MEM_FLASH) -> Request:
    if not 0 < len(data) <= MAX_BLOCK:
        raise ValueError(f"a page is 1..{MAX_BLOCK} bytes, not {len(data)}")
    return Request("PROG_PAGE", bytes([STK_PROG_PAGE]) + struct.pack(">H", len(data))
                   + bytes([memtype]) + bytes(data) + bytes([CRC_EOP]))


def read_page(length: int, memtype: int = MEM_FLASH) -> Request:
    if not 0 < length <= MAX_BLOCK:
        raise ValueError(f"a page is 1..{MAX_BLOCK} bytes, not {length}")
    return Request("READ_PAGE", bytes([STK_READ_PAGE]) + struct.pack(">H", length)
                   + bytes([memtype, CRC_EOP]), length)


def decode_reply(data: bytes, reply_len: int) -> "Decoded[bytes]":
    """The reply at the start of `data` to a request whose payload is `reply_len` bytes.

    Returns the payload as the frame. A reply that breaks the framing consumes
    everything received so far, because nothing after it can be trusted.
    """
    if not data:
        return Decoded(0)
    first = data[0]
    if first == STK_NOSYNC:
        return Decoded(len(data), None, NOSYNC)
    if first != STK_INSYNC:
        return Decoded(len(data), None, BAD_START)
    total = reply_len + 2
    if len(data) < total:
        return Decoded(0)
    if data[total - 1] != STK_OK:
        return Decoded(len(data), None, BAD_END)
    return Decoded(total, bytes(data[1 : total - 1]))


def describe(byte: Optional[int]) -> str:
    """A reply byte in words, for error messages."""
    names = {STK_OK: "OK", STK_FAILED: "FAILED", STK_UNKNOWN: "UNKNOWN",
             STK_NODEVICE: "NODEVICE", STK_INSYNC: "INSYNC", STK_NOSYNC: "NOSYNC"}
    if byte is None:
        return "nothing"
    return f"{byte:#04x}" + (f" ({names[byte]})" if byte in names else "")
