"""Capture files: counts equal the simulator's ground truth; probe counts agree with tshark."""

import contextlib
import struct
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.dot11 import Dot11, Dot11ProbeReq, RadioTap
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import ARP, CookedLinux, Dot1Q, Ether

from agent.clients.counter import CONNECTED, INFRA, NEARBY, WINDOWS, ClientCounter
from agent.clients.errors import CaptureError
from agent.clients.files import count_buffer, count_file
from agent.clients.mac import is_locally_administered, parse_mac
from agent.clients.pcap import classify, frames
from simulator.pcapwrite import write_pcap, write_pcapng

A = "3c:22:fb:00:00:01"
B = "06:11:22:33:44:55"


def count(path):
    counter = ClientCounter(keep_totals=True)
    stats = count_file(path, counter)
    return counter, stats


@pytest.mark.parametrize("name", ["lan.pcap", "lan.pcapng"])
def test_lan_counts_equal_truth(hotspot, name):
    out, truth = hotspot
    counter, stats = count(out / name)
    assert stats["frames"] == truth["lan_frames"]
    totals = counter.totals()
    assert (totals.connected, totals.connected_randomized) == (
        truth["connected"],
        truth["connected_randomized"],
    )
    assert totals.nearby == 0
    for label, seconds in WINDOWS.items():
        c = counter.counts(stats["last_ts"], seconds)
        assert c.connected == truth[f"connected_{label}"], label
        assert c.connected_randomized == truth[f"connected_randomized_{label}"], label


@pytest.mark.parametrize("name", ["air.pcap", "air.pcapng"])
def test_air_counts_equal_truth(hotspot, name):
    out, truth = hotspot
    counter, stats = count(out / name)
    assert stats["frames"] == truth["air_frames"]
    totals = counter.totals()
    assert (totals.nearby, totals.nearby_randomized) == (
        truth["nearby"],
        truth["nearby_randomized"],
    )
    assert totals.connected == 0
    for label, seconds in WINDOWS.items():
        c = counter.counts(stats["last_ts"], seconds)
        assert (c.nearby, c.nearby_randomized) == (
            truth[f"nearby_{label}"],
            truth[f"nearby_randomized_{label}"],
        ), label


def tshark_fields(path, display_filter, field):
    done = subprocess.run(
        ["tshark", "-r", str(path), "-Y", display_filter, "-T", "fields", "-e", field],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return [line for line in done.stdout.splitlines() if line]


@pytest.mark.parametrize("name", ["air.pcap", "air.pcapng"])
def test_probe_counts_agree_with_tshark(hotspot, name):
    out, _truth = hotspot
    path = out / name
    sources = tshark_fields(
        path, "wlan.fc.type_subtype == 4 && radiotap.flags.badfcs == 0", "wlan.sa"
    )
    macs = {parse_mac(s) for s in sources}
    counter, stats = count(path)
    assert stats["frames_matched"] == len(sources)
    totals = counter.totals()
    assert totals.nearby == len(macs)
    assert totals.nearby_randomized == sum(1 for mac in macs if is_locally_administered(mac))


def test_lan_counts_agree_with_tshark(hotspot):
    out, _truth = hotspot
    path = out / "lan.pcap"
    arp = tshark_fields(path, "arp", "arp.src.hw_mac")
    dhcp_clients = tshark_fields(
        path, "dhcp.option.dhcp == 1 || dhcp.option.dhcp == 3", "dhcp.hw.mac_addr"
    )
    servers = set(tshark_fields(path, "dhcp.type == 2", "eth.src"))
    expected = (set(arp) | set(dhcp_clients)) - servers
    counter, _stats = count(path)
    assert counter.totals().connected == len(expected)


def _frames_of(packets, linktype=1, fmt=write_pcap):
    import io

    buf = io.BytesIO()
    fmt(buf, linktype, [(1763900000.0 + i, bytes(p)) for i, p in enumerate(packets)])
    return buf.getvalue()


def _classified(data):
    return [classify(data, off, n, lt) for _ts, lt, off, n in frames(data)]


def test_classify_table():
    chaddr = parse_mac(A) + b"\x00" * 10
    packets = [
        Ether(src=A, dst="ff:ff:ff:ff:ff:ff") / ARP(hwsrc=A, psrc="10.0.0.2", pdst="10.0.0.1"),
        Ether(src=A) / Dot1Q(vlan=20) / ARP(hwsrc=A),
        Ether(src="02:00:00:00:00:99")
        / IP()
        / UDP(sport=67, dport=67)
        / BOOTP(op=1, chaddr=chaddr)
        / DHCP(options=[("message-type", "request"), "end"]),
        Ether(src=B) / IP() / UDP(sport=67, dport=68) / BOOTP(op=2, chaddr=chaddr),
        Ether(src=A) / IP() / UDP(sport=1234, dport=53) / (b"\x00" * 300),
        Ether(src=A) / IP(flags="MF", frag=0, proto=17) / (b"\x00" * 20),
        Ether(src=A) / IP(frag=100, proto=17) / (b"\x00\x43\x00\x44" + b"\x00" * 300),
        Ether(src=A)[Ether],  # runt
    ]
    got = _classified(_frames_of(packets))
    assert got == [
        (CONNECTED, parse_mac(A)),
        (CONNECTED, parse_mac(A)),
        (CONNECTED, parse_mac(A)),  # relayed: chaddr, not the relay's address
        (INFRA, parse_mac(B)),
        None,
        None,
        None,
        None,
    ]


def test_classify_linux_cooked_and_80211():
    sll = _frames_of(
        [
            CookedLinux(
                pkttype=0, lladdrtype=1, lladdrlen=6, src=parse_mac(A) + b"\0\0", proto=0x0806
            )
            / ARP(hwsrc=A)
        ],
        linktype=113,
    )
    assert _classified(sll) == [(CONNECTED, parse_mac(A))]
    probe = Dot11(type=0, subtype=4, addr1="ff:ff:ff:ff:ff:ff", addr2=B, addr3="ff:ff:ff:ff:ff:ff")
    raw = _frames_of([probe / Dot11ProbeReq(), Dot11(type=0, subtype=5, addr2=A)], linktype=105)
    assert _classified(raw) == [(NEARBY, parse_mac(B)), None]
    bad = RadioTap(present="TSFT+Flags", mac_timestamp=5, Flags="badFCS") / probe
    good = RadioTap(present="TSFT+Flags", mac_timestamp=5, Flags=0) / probe
    assert _classified(_frames_of([bad, good], linktype=127)) == [None, (NEARBY, parse_mac(B))]


def test_pcap_variants_big_endian_nanoseconds():
    frame = bytes(Ether(src=A) / ARP(hwsrc=A))
    head = struct.pack(">IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 65535, 1)
    rec = struct.pack(">IIII", 1763900000, 500_000_000, len(frame), len(frame)) + frame
    data = head + rec
    assert [(ts, lt) for ts, lt, _o, _n in frames(data)] == [(1763900000.5, 1)]
    counter = ClientCounter(keep_totals=True)
    count_buffer(data, counter)
    assert counter.totals().connected == 1


def test_pcapng_simple_packet_block():
    frame = bytes(Ether(src=A) / ARP(hwsrc=A))

    def block(btype, body):
        body += b"\0" * (-len(body) % 4)
        return struct.pack("<II", btype, len(body) + 12) + body + struct.pack("<I", len(body) + 12)

    data = (
        block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
        + block(1, struct.pack("<HHI", 1, 0, 0))
        + block(0x0BAD, b"custom block")  # unknown blocks are skipped
        + block(3, struct.pack("<I", len(frame)) + frame)
    )
    assert _classified(data) == [(CONNECTED, parse_mac(A))]


# --- bad input -----------------------------------------------------------------


def test_truncated_files_raise_capture_error(hotspot, tmp_path):
    out, _truth = hotspot
    for name in ("lan.pcap", "lan.pcapng"):
        data = (out / name).read_bytes()
        for cut in (3, 20, 30, len(data) // 2 + 1, len(data) - 1):
            path = tmp_path / f"cut-{cut}-{name}"
            path.write_bytes(data[:cut])
            with pytest.raises(CaptureError, match=str(path)):
                count(path)


def test_corrupt_and_foreign_files(tmp_path):
    cases = {
        "empty": b"",
        "text": b"hello, this is not a capture\n" * 10,
        "huge-record": struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
        + struct.pack("<IIII", 0, 0, 0x7FFFFFFF, 0x7FFFFFFF),
        "usb-linktype": struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 220),
    }
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(CaptureError):
            count(path)
    with pytest.raises(CaptureError, match="cannot read"):
        count(tmp_path / "missing.pcap")


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=400), flip=st.integers(0, 10_000), byte=st.integers(0, 255))
def test_mangled_captures_never_crash(data, flip, byte):
    base = bytearray(
        _frames_of([Ether(src=A) / ARP(hwsrc=A), Ether() / IP() / UDP()], fmt=write_pcapng)
    )
    base[flip % len(base)] = byte
    for blob in (bytes(base), bytes(base) + data, data):
        counter = ClientCounter(keep_totals=True)
        with contextlib.suppress(CaptureError):
            count_buffer(blob, counter)


@settings(max_examples=500, deadline=None)
@given(data=st.binary(max_size=120), linktype=st.sampled_from([1, 105, 113, 127, 276]))
def test_classify_any_bytes_never_raises(data, linktype):
    hit = classify(data, 0, len(data), linktype)
    assert hit is None or (hit[0] in (CONNECTED, NEARBY, INFRA) and len(hit[1]) == 6)
