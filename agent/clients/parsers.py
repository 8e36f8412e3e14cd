"""Pure parsers for the state tools of a hotspot: who is associated, leased or neighbour.

Each takes the tool's text and returns `Stations` (a list of `Station`); text that is not
in the tool's format raises ParseError naming the line, so a garbage file becomes an
`unavailable` source and never a count of zero. Well-formed entries that are not a
connected client (a hostapd station not associated, a lease for non-Ethernet hardware)
are left out and counted in `Stations.skipped`; `Stations.reason` says it in words
without a MAC, for the source's status.

Formats (as the tools print them):

hostapd control socket `STA-FIRST` / `STA-NEXT <mac>` reply, and `hostapd_cli all_sta`
(one such block per station, each starting with the bare MAC, then `flags=`; only a
station with `[ASSOC]` is connected: hostapd also lists stations that are only
authenticated, `flags=[AUTH]`, or not even that, `flags=`)::

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

dnsmasq leases file (`expiry mac ip hostname client-id`, IPv6 after a `duid` line; for
hardware that is not Ethernet, or an empty address, dnsmasq puts the ARP hardware type
before it, `06-00:1c:...` or `00-`)::

    1763900000 02:5e:10:00:00:01 10.42.0.10 phone-1 01:02:5e:10:00:00:01
    1763900000 20-80:00:02:08:fe:80:...:0a:bc:de 10.42.0.21 ib-node *

`ip neigh`::

    10.42.0.10 dev br0 lladdr 02:5e:10:00:00:01 REACHABLE

/proc/net/arp::

    IP address       HW type     Flags       HW address            Mask     Device
    10.42.0.10       0x1         0x2         02:5e:10:00:00:01     *        br0
"""

import re
from typing import Iterable, List, NamedTuple, Optional

from agent.clients.errors import ParseError
from agent.clients.mac import is_unicast, parse_mac, redact_macs


def _quote(text: str) -> str:
    """Input quoted in an error: an `unavailable` reason is published, so no MACs in it."""
    return repr(redact_macs(text[:40]))


class Station(NamedTuple):
    """One client a state tool reports. `connected_s`: how long, when the tool says."""

    mac: bytes
    connected_s: Optional[float] = None


class Stations(List[Station]):
    """A parser's stations, and how many well-formed entries it left out on purpose.

    `skipped` entries are ones the tool lists that are not a connected client (see each
    parser); `reason` is the text for the source's status, or None when none was left out.
    """

    def __init__(self, stations: Iterable[Station] = (), skipped: int = 0, what: str = "") -> None:
        super().__init__(stations)
        self.skipped = skipped
        self.what = what  # what a skipped entry is, e.g. "hostapd stations not associated"

    @property
    def reason(self) -> Optional[str]:
        if not self.skipped:
            return None
        return f"{self.what}, not counted: {self.skipped}"

    @classmethod
    def joined(cls, parts: Iterable["Stations"]) -> "Stations":
        """Several replies of one source (hostapd's STA-FIRST, STA-NEXT ...) as one."""
        out = cls()
        for part in parts:
            out.extend(part)
            out.skipped += part.skipped
            out.what = out.what or part.what
        return out


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
# ap_sta_flags_txt: "[AUTH][ASSOC][AUTHORIZED]..."; hostapd prints "[PENDING_POLL" without
# its closing bracket, so a flag is the name after each "[".
_HOSTAPD_FLAG = re.compile(r"\[([A-Za-z0-9_]+)")
HOSTAPD_SKIPPED = "hostapd stations not associated"


def parse_hostapd_sta(text: str) -> Stations:
    """One or more hostapd STA blocks: `STA-FIRST` replies or `hostapd_cli all_sta`.

    Only stations whose flags hold `[ASSOC]` are returned; the others (authenticated
    only, or not even that) are counted in `skipped`. A block without a `flags=` line is
    not hostapd's (it always prints one after the MAC) and raises ParseError.
    """
    what = "hostapd"
    _clean(text, what)
    stations = Stations(what=HOSTAPD_SKIPPED)
    mac: Optional[bytes] = None
    mac_line = 0
    connected: Optional[float] = None
    flags: Optional[List[str]] = None

    def finish() -> None:
        if mac is None:
            return
        if flags is None:
            raise ParseError(f"{what} line {mac_line}: station without a flags= line")
        if "ASSOC" in flags:
            stations.append(Station(mac, connected))
        else:
            stations.skipped += 1

    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("Selected interface"):
            continue
        if line in _HOSTAPD_REPLY_ERRORS:
            raise ParseError(f"{what} line {number}: hostapd answered {line}")
        candidate = parse_mac(line)
        if candidate is not None:
            finish()
            mac, mac_line, connected, flags = candidate, number, None, None
            continue
        if mac is None or not _KEY_VALUE.match(line):
            raise ParseError(f"{what} line {number}: {_quote(line)} is not a STA field")
        key, _, value = line.partition("=")
        if key == "flags":
            flags = _HOSTAPD_FLAG.findall(value)
        elif key == "connected_time":
            try:
                connected = float(value)
            except ValueError as exc:
                raise ParseError(f"{what} line {number}: bad connected_time") from exc
    finish()
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
# lease.c writes "%.2x-" (the ARP hardware type) before an address that is not Ethernet
# or is empty: "06-00:1c:bf:12:34:57", "20-80:00:...", "00-".
_HW_TYPE_PREFIX = re.compile(r"^[0-9a-fA-F]{2}-")
DNSMASQ_SKIPPED = "dnsmasq lease lines with a non-Ethernet or empty hardware address"


def parse_dnsmasq_leases(text: str, now: Optional[float] = None) -> Stations:
    """The dnsmasq leases file; leases expired at `now` are left out (expiry 0: never).

    A current IPv4 lease whose hardware address is not a 6-byte Ethernet one (a
    hardware-type prefix, `*`, another length) is no Wi-Fi client: the line is left out
    and counted in `skipped`, and the other leases still count.
    """
    what = "dnsmasq leases"
    _clean(text, what)
    stations = Stations(what=DNSMASQ_SKIPPED)
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
        address = fields[1]
        typed = _HW_TYPE_PREFIX.match(address)
        if typed:
            address = address[typed.end() :]
        elif address == "*":
            address = ""
        if address and not _HEX_OCTETS.match(address):
            raise ParseError(f"{what} line {number}: {_quote(fields[1])} is not a hardware address")
        expiry = int(fields[0])
        if now is not None and expiry != 0 and expiry < now:
            continue
        if typed or len(address) != 17:
            stations.skipped += 1  # InfiniBand, token ring, no address...: not Wi-Fi
            continue
        stations.append(Station(_mac_or_error(address, number, what)))
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
