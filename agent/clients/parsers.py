"""Pure parsers for the state tools of a hotspot: who is associated, leased or neighbour.

Each takes the tool's text and returns a list of `Station`s; text that is not in the
tool's format raises ParseError naming the line, so a garbage file becomes an
`unavailable` source and never a count of zero.

Formats (as the tools print them):

hostapd control socket `STA-FIRST` / `STA-NEXT <mac>` reply, and `hostapd_cli all_sta`
(one such block per station, each starting with the bare MAC)::

    02:5e:10:00:00:01
    flags=[AUTH][ASSOC][AUTHORIZED][WMM]
    aid=1
    ...
    connected_time=35

`iw dev wlan0 station dump`::

    Station 02:5e:10:00:00:01 (on wlan0)
    \tinactive time:\t300 ms
    ...
    \tconnected time:\t35 seconds

dnsmasq leases file (`expiry mac ip hostname client-id`, IPv6 after a `duid` line)::

    1763900000 02:5e:10:00:00:01 10.42.0.10 phone-1 01:02:5e:10:00:00:01

`ip neigh`::

    10.42.0.10 dev br0 lladdr 02:5e:10:00:00:01 REACHABLE

/proc/net/arp::

    IP address       HW type     Flags       HW address            Mask     Device
    10.42.0.10       0x1         0x2         02:5e:10:00:00:01     *        br0
"""

import re
from typing import List, NamedTuple, Optional

from agent.clients.errors import ParseError
from agent.clients.mac import is_unicast, parse_mac, redact_macs


def _quote(text: str) -> str:
    """Input quoted in an error: an `unavailable` reason is published, so no MACs in it."""
    return repr(redact_macs(text[:40]))


class Station(NamedTuple):
    """One client a state tool reports. `connected_s`: how long, when the tool says."""

    mac: bytes
    connected_s: Optional[float] = None


def _mac_or_error(text: str, number: int, what: str) -> bytes:
    mac = parse_mac(text)
    if mac is None:
        raise ParseError(f"{what} line {number}: {_quote(text)} is not a MAC address")
    return mac


def _clean(text: str, what: str) -> str:
    if "\x00" in text:
        raise ParseError(f"{what}: binary data, not {what} output")
    return text


# --- hostapd ---------------------------------------------------------------------

_KEY_VALUE = re.compile(r"^[A-Za-z0-9_.\-\[\]]+=")
_HOSTAPD_REPLY_ERRORS = ("FAIL", "UNKNOWN COMMAND")


def parse_hostapd_sta(text: str) -> List[Station]:
    """One or more hostapd STA blocks: `STA-FIRST` replies or `hostapd_cli all_sta`."""
    what = "hostapd"
    _clean(text, what)
    stations: List[Station] = []
    mac: Optional[bytes] = None
    connected: Optional[float] = None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("Selected interface"):
            continue
        if line in _HOSTAPD_REPLY_ERRORS:
            raise ParseError(f"{what} line {number}: hostapd answered {line}")
        candidate = parse_mac(line)
        if candidate is not None:
            if mac is not None:
                stations.append(Station(mac, connected))
            mac, connected = candidate, None
            continue
        if mac is None or not _KEY_VALUE.match(line):
            raise ParseError(f"{what} line {number}: {_quote(line)} is not a STA field")
        key, _, value = line.partition("=")
        if key == "connected_time":
            try:
                connected = float(value)
            except ValueError as exc:
                raise ParseError(f"{what} line {number}: bad connected_time") from exc
    if mac is not None:
        stations.append(Station(mac, connected))
    return stations


# --- iw --------------------------------------------------------------------------

_IW_STATION = re.compile(r"^Station ([0-9a-fA-F:]{17}) \(on [^)]+\)$")
_IW_CONNECTED = re.compile(r"^connected time:\s*(\d+) seconds$")


def parse_iw_station_dump(text: str) -> List[Station]:
    """`iw dev IF station dump`."""
    what = "iw station dump"
    _clean(text, what)
    stations: List[Station] = []
    mac: Optional[bytes] = None
    connected: Optional[float] = None
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        head = _IW_STATION.match(raw.strip()) if not raw[0].isspace() else None
        if head:
            if mac is not None:
                stations.append(Station(mac, connected))
            mac, connected = _mac_or_error(head.group(1), number, what), None
            continue
        if mac is None or not raw[0].isspace() or ":" not in raw:
            raise ParseError(f"{what} line {number}: {_quote(raw.strip())} is not a station field")
        found = _IW_CONNECTED.match(raw.strip())
        if found:
            connected = float(found.group(1))
    if mac is not None:
        stations.append(Station(mac, connected))
    return stations


# --- dnsmasq ---------------------------------------------------------------------


_HEX_OCTETS = re.compile(r"^[0-9a-fA-F]{1,2}(?::[0-9a-fA-F]{1,2})*$")


def parse_dnsmasq_leases(text: str, now: Optional[float] = None) -> List[Station]:
    """The dnsmasq leases file; leases expired at `now` are left out (expiry 0: never)."""
    what = "dnsmasq leases"
    _clean(text, what)
    stations: List[Station] = []
    in_v6 = False
    for number, raw in enumerate(text.splitlines(), start=1):
        fields = raw.split()
        if not fields:
            continue
        if fields[0] == "duid" and len(fields) == 2:
            in_v6 = True  # following lines are DHCPv6 leases: field 2 is an IAID
            continue
        if len(fields) != 5 or not fields[0].isdigit():
            raise ParseError(f"{what} line {number}: expected 'expiry mac ip name client-id'")
        if in_v6 or ":" in fields[2]:
            continue
        if not _HEX_OCTETS.match(fields[1]):
            raise ParseError(f"{what} line {number}: {_quote(fields[1])} is not a hardware address")
        expiry = int(fields[0])
        if now is not None and expiry != 0 and expiry < now:
            continue
        # Non-Ethernet hardware (e.g. InfiniBand) has longer addresses; not Wi-Fi clients.
        if len(fields[1]) != 17:
            continue
        stations.append(Station(_mac_or_error(fields[1], number, what)))
    return stations


# --- kernel neighbour table ------------------------------------------------------

# States in which the neighbour answered recently; FAILED/INCOMPLETE have no lladdr.
_LIVE_STATES = {"REACHABLE", "STALE", "DELAY", "PROBE", "PERMANENT", "NOARP"}


def parse_ip_neigh(text: str, device: Optional[str] = None) -> List[Station]:
    """`ip neigh` (IPv4 and IPv6 rows); optionally only rows on `device`."""
    what = "ip neigh"
    _clean(text, what)
    stations: List[Station] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        fields = raw.split()
        if not fields:
            continue
        if len(fields) < 3 or "dev" not in fields or fields.index("dev") != 1:
            raise ParseError(f"{what} line {number}: expected 'ADDRESS dev IF ...'")
        if device is not None and fields[2] != device:
            continue
        if "lladdr" not in fields or not _LIVE_STATES.intersection(fields):
            continue
        at = fields.index("lladdr") + 1
        if at >= len(fields):
            raise ParseError(f"{what} line {number}: lladdr without an address")
        mac = _mac_or_error(fields[at], number, what)
        if is_unicast(mac):
            stations.append(Station(mac))
    return stations


_ATF_COM = 0x02  # entry complete


def parse_proc_net_arp(text: str, device: Optional[str] = None) -> List[Station]:
    """/proc/net/arp; incomplete entries (flags without ATF_COM) are left out."""
    what = "/proc/net/arp"
    _clean(text, what)
    lines = text.splitlines()
    if not lines or not lines[0].startswith("IP address"):
        raise ParseError(f"{what} line 1: missing the 'IP address  HW type ...' header")
    stations: List[Station] = []
    for number, raw in enumerate(lines[1:], start=2):
        fields = raw.split()
        if not fields:
            continue
        if len(fields) != 6:
            raise ParseError(f"{what} line {number}: expected 6 columns")
        try:
            flags = int(fields[2], 16)
        except ValueError as exc:
            raise ParseError(f"{what} line {number}: bad flags {_quote(fields[2][:10])}") from exc
        if device is not None and fields[5] != device:
            continue
        mac = _mac_or_error(fields[3], number, what)
        if flags & _ATF_COM and is_unicast(mac):
            stations.append(Station(mac))
    return stations
