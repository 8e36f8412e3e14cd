"""MAC address helpers: parse the textual forms tools print, and classify the bits.

A parsed MAC is 6 raw bytes. Raw MACs stay in memory only; see agent/clients/identity.py.
"""

import re
from typing import Optional

_SEP = re.compile(r"^[0-9A-Fa-f]{2}([:-])(?:[0-9A-Fa-f]{2}\1){4}[0-9A-Fa-f]{2}$")


def parse_mac(text: str) -> Optional[bytes]:
    """`aa:bb:cc:dd:ee:ff` or `aa-bb-...` to 6 bytes; None for anything else."""
    text = text.strip()
    if len(text) != 17 or not _SEP.match(text):
        return None
    return bytes.fromhex(text.replace(text[2], ""))


def is_locally_administered(mac: bytes) -> bool:
    """The U/L bit: set on randomized (private) addresses that phones rotate."""
    return bool(mac[0] & 0x02)


def is_unicast(mac: bytes) -> bool:
    """A station's own address: not group (multicast/broadcast), not all zeros."""
    return not (mac[0] & 0x01) and mac != b"\x00" * 6


def format_mac(mac: bytes) -> str:
    """Only for simulators and tests; the agent never prints a raw MAC."""
    return ":".join(f"{b:02x}" for b in mac)


# Anything that looks like a MAC, with any of the usual separators or none.
_MAC_LIKE = re.compile(r"[0-9A-Fa-f]{2}(?:[:.\-]?[0-9A-Fa-f]{2}){5}")


def redact_macs(text: str) -> str:
    """For text from outside (tool errors, bad lines) that goes into a reason or a log."""
    return _MAC_LIKE.sub("<mac>", text)
