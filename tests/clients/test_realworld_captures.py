"""Real third-party captures (tests/data/realworld/captures): the counter agrees with tshark.

Every capture file there is one test id (its path under captures/). The expected figures
come from tshark on the same file, with the display filters and fields of
tests/clients/test_capture_files.py:

  probes          wlan.fc.type_subtype == 4 && <not bad FCS>   -> wlan.sa
  ARP senders     ARP (below)                                  -> arp.src.hw_mac
  DHCP clients    DHCP_CLIENTS (below)                         -> dhcp.hw.mac_addr
  DHCP servers    dhcp.type == 2                               -> eth.src (sll.src.eth for SLL)

Differences from test_capture_files.py, all forced by real files (the simulator's
captures are all radiotap-with-Flags or plain Ethernet):

* "not bad FCS" is `!(radiotap.flags.badfcs == 1)` rather than `radiotap.flags.badfcs == 0`:
  the latter is false for every frame without a radiotap Flags field, so raw 802.11,
  Prism, AVS and PPI files would expect no probes at all.
* Each row also carries frame.protocols, and a row counts only when its frame's link
  layer is one the counter reads that kind from (802.11 headers for probes; Ethernet or
  Linux cooked for ARP/DHCP): tshark also finds ARP inside 802.11 data frames and
  802.11 inside tunnels, which the counter by design does not look at.
* Group and all-zero addresses are dropped, as the counter does (agent/clients/mac.py
  is_unicast), and DHCP servers are taken out of both sets as the counter's INFRA does.
* Frames: the counter's `frames` (decoded) plus `frames_skipped` (pcapng interfaces with
  a link type it does not decode) equal tshark's frame count, and `frames_skipped`
  equals tshark's frames on link layers other than 802.11 and Ethernet/Linux cooked.
* Truncated files: tshark reports the cut and exits non-zero after dissecting every
  whole frame; the counter is run as the CLI runs it (`truncated_ok=True`, counting up
  to the cut) and must say `truncated` exactly when tshark says the file is cut short.

* ARP is what docs/clients.md counts, as the ARP-types test there states it: an ARP
  request or reply (opcode 1 or 2: RARP is not ARP) with Ethernet hardware, IPv4, and
  6/4 address lengths (zeek's arp-leak.pcap has protocol size 255), in an Ethernet II
  frame (`!llc`: ARP in 802.2 LLC/SNAP, zeek's snap-arp.pcapng, comes from no Linux
  hotspot interface, and the box's kernel filter passes only Ethernet II).
* A DHCP client is any BOOTREQUEST with Ethernet addresses (`dhcp.type == 1`), as the
  counter reads it: a box with a static address that only sends DHCPINFORM (zeek's
  dhcp_inform.pcap, dhcp_flood.pcap) is a connected client too. The simulator's
  captures have DISCOVER and REQUEST only, where the two filters agree.

A file the counter cannot read fails with its CaptureError message: that is the point
of the test (no skip, no xfail).
"""

import inspect
import subprocess
from collections import Counter as Multiset
from pathlib import Path
from typing import Dict, List, Set, Tuple

import pytest

from agent.clients.counter import CONNECTED, INFRA, NEARBY, ClientCounter
from agent.clients.files import count_file
from agent.clients.mac import is_locally_administered, is_unicast, parse_mac

CAPTURES = Path(__file__).resolve().parents[1] / "data" / "realworld" / "captures"
SUFFIXES = (".pcap", ".pcapng", ".cap")
FILES = sorted(p for p in CAPTURES.rglob("*") if p.is_file() and p.suffix in SUFFIXES)

PROBES = "wlan.fc.type_subtype == 4 && !(radiotap.flags.badfcs == 1)"
ARP = ("arp && !llc && arp.opcode <= 2 && arp.hw.type == 1 && arp.proto.type == 0x0800"
       " && arp.hw.size == 6 && arp.proto.size == 4")
DHCP_CLIENTS = "dhcp.type == 1 && dhcp.hw.type == 1 && dhcp.hw.len == 6"
DHCP_SERVERS = "dhcp.type == 2"

# First entry of frame.protocols: the link layer tshark dissected the frame with.
AIR_LINKS = {"radiotap", "wlan", "prism", "wlancap", "ppi", "wlan_radio"}
LAN_LINKS = {"eth", "sll"}


def tshark_run(
    path: Path, display_filter: str, *fields: str
) -> "subprocess.CompletedProcess[str]":
    """Like test_capture_files.tshark_fields, with several fields and no exit-code check."""
    return subprocess.run(
        ["tshark", "-r", str(path), "-Y", display_filter, "-T", "fields",
         "-E", "separator=\t", "-E", "occurrence=f", *[a for f in fields for a in ("-e", f)]],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def tshark_rows(path: Path, display_filter: str, *fields: str) -> List[Tuple[str, ...]]:
    done = tshark_run(path, display_filter, *fields)
    if done.returncode != 0 and not done.stdout and "cut short" not in done.stderr:
        raise AssertionError(f"tshark could not read {path}: {done.stderr.strip()}")
    return [tuple(line.split("\t")) for line in done.stdout.splitlines() if line.strip()]


def tshark_frames(path: Path) -> Tuple[int, int, bool]:
    """(all frames, frames on link layers the counter does not decode, cut short?)"""
    done = tshark_run(path, "frame", "frame.protocols")
    links = [link_of(line) for line in done.stdout.splitlines() if line.strip()]
    foreign = sum(1 for link in links if link not in AIR_LINKS | LAN_LINKS)
    return len(links), foreign, "cut short" in done.stderr


def link_of(protocols: str) -> str:
    return protocols.split(":", 1)[0]


def macs(rows: List[Tuple[str, ...]], links: Set[str]) -> List[bytes]:
    """MACs in the first field of rows whose frame's link layer (second field) is in links."""
    out = []
    for row in rows:
        if len(row) >= 2 and row[0] and link_of(row[1]) in links:
            mac = parse_mac(row[0].split(",")[0])
            if is_unicast(mac):
                out.append(mac)
    return out


def expected(path: Path) -> Dict[str, object]:
    probes = macs(tshark_rows(path, PROBES, "wlan.sa", "frame.protocols"), AIR_LINKS)
    arp = macs(tshark_rows(path, ARP, "arp.src.hw_mac", "frame.protocols"), LAN_LINKS)
    clients = macs(
        tshark_rows(path, DHCP_CLIENTS, "dhcp.hw.mac_addr", "frame.protocols"), LAN_LINKS
    )
    servers = set(
        macs(tshark_rows(path, DHCP_SERVERS, "eth.src", "frame.protocols"), {"eth"})
        + macs(tshark_rows(path, DHCP_SERVERS, "sll.src.eth", "frame.protocols"), {"sll"})
    )
    nearby = set(probes) - servers
    connected = (set(arp) | set(clients)) - servers
    frames, foreign, cut = tshark_frames(path)
    return {
        "frames": frames,
        "frames_skipped": foreign,
        "truncated": cut,
        "probe_frames": len(probes),
        "nearby": len(nearby),
        "nearby_randomized": sum(1 for m in nearby if is_locally_administered(m)),
        "connected": len(connected),
        "connected_randomized": sum(1 for m in connected if is_locally_administered(m)),
    }


class TallyCounter(ClientCounter):
    """A ClientCounter that also counts the observations it is fed, by kind."""

    def __init__(self) -> None:
        super().__init__(keep_totals=True)
        self.kinds: Multiset = Multiset()

    def see(self, kind, mac, ts, connected_s=None):  # type: ignore[override]
        if is_unicast(mac):
            self.kinds[kind] += 1
        super().see(kind, mac, ts, connected_s)


def got(path: Path) -> Dict[str, object]:
    counter = TallyCounter()
    if "truncated_ok" in inspect.signature(count_file).parameters:
        stats = count_file(path, counter, truncated_ok=True)
    else:  # before the truncation work: a cut file raises
        stats = count_file(path, counter)
    # A CaptureError above fails the test with the counter's own message.
    totals = counter.totals()
    skipped = stats.get("frames_skipped", 0)
    return {
        "frames": stats["frames"] + skipped,
        "frames_skipped": skipped,
        "truncated": bool(stats.get("truncated", False)),
        "probe_frames": counter.kinds[NEARBY],
        "nearby": totals.nearby,
        "nearby_randomized": totals.nearby_randomized,
        "connected": totals.connected,
        "connected_randomized": totals.connected_randomized,
    }


def test_there_are_real_captures():
    assert len(FILES) >= 10, f"expected the real-world captures under {CAPTURES}"
    assert CONNECTED and INFRA  # the kinds the expectations above stand for


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(CAPTURES)) for p in FILES])
def test_counts_agree_with_tshark(path):
    want = expected(path)
    have = got(path)
    assert have == want
