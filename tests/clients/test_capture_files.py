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
from agent.clients.errors import CaptureError, CaptureTruncated
from agent.clients.files import count_buffer, count_file
from agent.clients.mac import is_locally_administered, parse_mac
from agent.clients.pcap import SUPPORTED, classify, frames
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


def tshark_fields(path, display_filter, field, check=True):
    done = subprocess.run(
        ["tshark", "-r", str(path), "-Y", display_filter, "-T", "fields", "-e", field],
        capture_output=True,
        text=True,
        timeout=120,
        check=check,
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


@settings(max_examples=500, deadline=None)
@given(
    data=st.binary(max_size=300),
    linktype=st.sampled_from([119, 163, 192]),
    head=st.sampled_from(["none", "prism", "avs", "ppi", "ppi-aligned"]),
)
def test_classify_any_bytes_behind_radio_headers_never_raises(data, linktype, head):
    wrap = {
        "none": lambda d: d,
        "prism": _prism,
        "avs": _avs,
        "ppi": _ppi,
        "ppi-aligned": lambda d: _ppi(d, aligned=True),
    }[head]
    for blob in (wrap(data), wrap(data)[: len(data) // 2]):
        hit = classify(blob, 0, len(blob), linktype)
        assert hit is None or (hit[0] in (CONNECTED, NEARBY, INFRA) and len(hit[1]) == 6)


# --- issue #19: ARP types, Prism/AVS/PPI, undecoded pcapng interfaces, cut files --------


def _mac(i, local=False):
    return f"{'06' if local else '3c'}:22:fb:00:01:{i:02x}"


def _arp(htype, ptype, hlen, plen, sha):
    body = struct.pack(">HHBBH", htype, ptype, hlen, plen, 1)
    body += sha.ljust(hlen, b"\x00")[:hlen] + b"\x0a" * plen + b"\x00" * hlen + b"\x0b" * plen
    return Ether(src=A, dst="ff:ff:ff:ff:ff:ff", type=0x0806) / body


def _arp_cases():
    """(frame, counted?) pairs: only Ethernet/IPv4 ARP (1, 0x0800, 6, 4) names a client."""
    return [
        (_arp(1, 0x0800, 6, 4, parse_mac(_mac(1))), True),
        (Ether(src=A) / Dot1Q(vlan=7) / ARP(hwsrc=_mac(2)), True),
        (_arp(6, 0x0800, 6, 4, parse_mac(_mac(3))), False),  # IEEE 802 hardware type
        (_arp(2, 0x0800, 6, 4, parse_mac(_mac(4))), False),  # experimental Ethernet
        (_arp(1, 0x86DD, 6, 16, parse_mac(_mac(5))), False),  # IPv6 protocol
        (_arp(1, 0x0800, 6, 16, parse_mac(_mac(6))), False),  # wrong protocol length
        (_arp(1, 0x0806, 6, 4, parse_mac(_mac(7))), False),  # protocol type not IPv4
        (_arp(1, 0x0800, 8, 4, parse_mac(_mac(8))), False),  # wrong hardware length
        (_arp(0x0101, 0x0800, 6, 4, parse_mac(_mac(9))), False),  # htype 257, low byte 1
    ]


def test_arp_needs_ethernet_hardware_and_ipv4_protocol(tmp_path):
    cases = _arp_cases()
    data = _frames_of([frame for frame, _ok in cases])
    got = _classified(data)
    assert [hit is not None for hit in got] == [ok for _frame, ok in cases]
    assert got[0] == (CONNECTED, parse_mac(_mac(1))) and got[1] == (CONNECTED, parse_mac(_mac(2)))
    path = tmp_path / "arp-types.pcap"
    path.write_bytes(data)
    counter, stats = count(path)
    # tshark sees every frame as ARP; the Ethernet/IPv4 ones by their decoded fields
    assert len(tshark_fields(path, "arp", "frame.number")) == len(cases)
    wanted = tshark_fields(
        path,
        "arp.hw.type == 1 && arp.proto.type == 0x0800 && arp.hw.size == 6 && arp.proto.size == 4",
        "arp.src.hw_mac",
    )
    assert stats["frames_matched"] == len(wanted) == 2
    assert counter.totals().connected == len(set(wanted))


def _probe(i, local=False):
    return bytes(
        Dot11(type=0, subtype=4, addr1="ff:ff:ff:ff:ff:ff", addr2=_mac(i, local), addr3=B)
        / Dot11ProbeReq()
    )


def _air_frames():
    """802.11 frames: probes from five devices (two randomized), a repeat, other subtypes."""
    beacon = bytes(Dot11(type=0, subtype=8, addr2=_mac(40), addr3=_mac(40)) / (b"\x00" * 12))
    response = bytes(Dot11(type=0, subtype=5, addr1=_mac(1), addr2=_mac(41)) / (b"\x00" * 12))
    data = bytes(Dot11(type=2, subtype=0, addr1=_mac(42), addr2=_mac(43)) / (b"\x00" * 40))
    return [
        _probe(1),
        beacon,
        _probe(2),
        _probe(3, local=True),
        response,
        _probe(1),
        data,
        _probe(4, local=True),
        _probe(5),
    ]


def _prism(frame, order="<"):
    # msgcode 0x44 (lnxind_wlansniffrm), msglen 144, device name, then ten 12-byte items
    head = struct.pack(order + "II16s", 0x44, 144, b"wlan0mon")
    return head + b"\x00" * (144 - len(head)) + frame


def _avs(frame, version=1):
    head = struct.pack(">IIQQ", 0x80211000 + version, 64, 5, 6)
    return head + b"\x00" * (64 - len(head)) + frame


def _ppi(frame, fcs_invalid=False, dlt=105, aligned=False):
    common = struct.pack(
        "<QHHHHBBbb", 7, 0x0004 if fcs_invalid else 0, 2, 2437, 0x00A0, 0, 0, -50, -95
    )
    fields = struct.pack("<HH", 2, len(common)) + common
    if aligned:  # an unknown 3-byte field, padded to 32 bits, before 802.11-Common
        fields = struct.pack("<HH", 0x7777, 3) + b"xyz\x00" + fields
    head = struct.pack("<BBHI", 0, 1 if aligned else 0, 8 + len(fields), dlt)
    return head + fields + frame


@pytest.mark.parametrize(
    "linktype,wrap,bad_fcs_filter",
    [
        (119, _prism, ""),
        (163, _avs, ""),
        (192, _ppi, " && ppi.80211-common.flags.fcs-invalid == 0"),
    ],
    ids=["prism", "avs", "ppi"],
)
def test_prism_avs_ppi_probe_counts_agree_with_tshark(tmp_path, linktype, wrap, bad_fcs_filter):
    packets = [wrap(f) for f in _air_frames()]
    if linktype == 192:
        packets.append(_ppi(_probe(9), fcs_invalid=True))  # the radio says: bad FCS
    for fmt in (write_pcap, write_pcapng):
        path = tmp_path / f"air-{linktype}.{fmt.__name__[6:]}"
        path.write_bytes(_frames_of(packets, linktype=linktype, fmt=fmt))
        sources = tshark_fields(path, "wlan.fc.type_subtype == 4" + bad_fcs_filter, "wlan.sa")
        macs = {parse_mac(m) for m in sources}
        counter, stats = count(path)
        assert stats["frames"] == len(packets)
        assert stats["frames_matched"] == len(sources) == 6
        totals = counter.totals()
        assert totals.nearby == len(macs)
        assert totals.nearby_randomized == sum(1 for m in macs if is_locally_administered(m)) == 2


def test_prism_avs_ppi_header_variants():
    probe = _probe(1)
    want = (NEARBY, parse_mac(_mac(1)))
    cases = [
        (119, _prism(probe, ">"), want),  # a big-endian host wrote the Prism header
        (119, _avs(probe), want),  # some drivers put an AVS header under DLT 119
        (163, _avs(probe, version=2), want),
        (192, _ppi(bytes(Ether(src=A) / ARP(hwsrc=A)), dlt=1), (CONNECTED, parse_mac(A))),
        (192, _ppi(bytes(RadioTap(present="Flags", Flags="badFCS")) + probe, dlt=127), None),
        (192, _ppi(bytes(RadioTap()) + probe, dlt=127), want),
        (192, _ppi(probe, aligned=True), want),  # 32-bit aligned fields
        (192, _ppi(probe, fcs_invalid=True, aligned=True), None),
        (192, _ppi(probe, dlt=192), None),  # PPI inside PPI is not followed
        (192, _ppi(probe, dlt=220), None),  # an inner link type not decoded
        (119, _prism(probe)[:140], None),  # cut inside the header
        (192, struct.pack("<BBHI", 0, 0, 4, 105) + probe, None),  # header length < 8
        (163, struct.pack(">II", 0x80211001, 9999) + probe, None),  # longer than the frame
    ]
    for i, (linktype, frame, expected) in enumerate(cases):
        assert classify(frame, 0, len(frame), linktype) == expected, i
        hit = classify(b"\xee" * 5 + frame, 5, len(frame), linktype)  # at an offset
        assert hit == expected, i
    assert {119, 163, 192} <= SUPPORTED


def _block(btype, body):
    body += b"\0" * (-len(body) % 4)
    return struct.pack("<II", btype, len(body) + 12) + body + struct.pack("<I", len(body) + 12)


def _idb(linktype, name):
    opts = b""
    if name:
        raw = name.encode()
        opts = struct.pack("<HH", 2, len(raw)) + raw + b"\0" * (-len(raw) % 4)
        opts += struct.pack("<HH", 0, 0)
    return _block(1, struct.pack("<HHI", linktype, 0, 65535) + opts)


def _epb(ifid, ts_us, frame):
    return _block(
        6,
        struct.pack("<IIIII", ifid, ts_us >> 32, ts_us & 0xFFFFFFFF, len(frame), len(frame))
        + frame,
    )


def _mixed_pcapng():
    """Interface 0 Ethernet, 1 USB (220, not decoded), 2 Ethernet, 3 link type 147 unused."""
    t = 1763900000 * 1_000_000
    usb = b"\x01" * 64
    chaddr = parse_mac(B) + b"\x00" * 10
    dhcp = (
        Ether(src="02:00:00:00:00:99")
        / IP()
        / UDP(sport=68, dport=67)
        / BOOTP(op=1, chaddr=chaddr)
        / DHCP(options=[("message-type", "discover"), "end"])
    )
    return (
        _block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
        + _idb(1, "eth0")
        + _idb(220, "usbmon1")
        + _epb(0, t, bytes(Ether(src=A) / ARP(hwsrc=A)))
        + _epb(1, t + 1, usb)
        + _epb(1, t + 2, usb)
        + _idb(1, "")
        + _idb(147, "mon-3c:22:fb:00:00:07")  # a MAC in a name is never repeated
        + _epb(2, t + 3, bytes(dhcp))
        + _block(3, struct.pack("<I", 20) + b"\x00" * 20)  # SPB: interface 0
        + _epb(1, t + 4, usb)
    )


def test_pcapng_interface_not_decoded_is_skipped_and_reported(tmp_path):
    path = tmp_path / "mixed.pcapng"
    path.write_bytes(_mixed_pcapng())
    counter, stats = count(path)
    assert counter.totals().connected == 2  # A by ARP on interface 0, B by DHCP on 2
    assert stats["frames"] == 3 and stats["frames_skipped"] == 3
    assert stats["skipped_interfaces"] == [
        {"interface": 1, "linktype": 220, "name": "usbmon1", "frames": 3},
        {"interface": 3, "linktype": 147, "name": "mon-<mac>", "frames": 0},
    ]
    assert stats["truncated"] is False
    # tshark numbers interfaces the same way and sees the same frames on each
    ids = tshark_fields(path, "frame", "frame.interface_id")
    assert len(ids) == stats["frames"] + stats["frames_skipped"]
    assert ids.count("1") == 3 and ids.count("0") + ids.count("2") == stats["frames"]
    assert set(tshark_fields(path, "frame.interface_id == 1", "frame.interface_name")) == {
        "usbmon1"
    }


def test_pcapng_with_no_decoded_interface_is_refused(tmp_path):
    data = (
        _block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
        + _idb(220, "usbmon1")
        + _epb(0, 0, b"\x01" * 64)
    )
    path = tmp_path / "usb.pcapng"
    path.write_bytes(data)
    with pytest.raises(CaptureError, match="link type 220 is not one the counter decodes"):
        count(path)


def _cut_inside_a_frame(data, fraction=0.5):
    """(record start, frame number, cut byte) of a frame near `fraction` of the file."""
    spans = list(frames(data))
    k = int(len(spans) * fraction)
    _ts, _lt, off, n = spans[k]
    record = off - (16 if data[:4] != b"\x0a\x0d\x0d\x0a" else 28)  # pcap / EPB header
    return record, k + 1, off + max(1, n // 2)


@pytest.mark.parametrize("name", ["lan.pcap", "lan.pcapng", "air.pcap", "air.pcapng"])
def test_cut_file_counts_up_to_the_cut(hotspot, tmp_path, name):
    out, _truth = hotspot
    data = (out / name).read_bytes()
    record, number, cut = _cut_inside_a_frame(data)
    path = tmp_path / f"cut-{name}"
    path.write_bytes(data[:cut])
    with pytest.raises(CaptureTruncated, match=str(path)):
        count(path)  # a caller that did not ask for partial files is still refused
    counter = ClientCounter(keep_totals=True)
    stats = count_file(path, counter, truncated_ok=True)
    assert stats["truncated"] is True
    assert stats["cut"]["byte"] == record and stats["cut"]["after_frame"] == number - 1
    assert stats["cut"]["file_size"] == cut
    assert stats["frames"] == number - 1
    assert (
        f"frame {number}" in stats["cut"]["reason"]
        or f"after frame {number - 1}" in (stats["cut"]["reason"])
    )
    # the same counts as the whole frames before the cut, written as a clean file
    whole = ClientCounter(keep_totals=True)
    clean = count_buffer(data[:record], whole)
    assert clean["truncated"] is False and clean["frames"] == stats["frames"]
    assert counter.totals() == whole.totals()
    assert stats["frames_matched"] == clean["frames_matched"]
    # tshark reads the same number of frames before it reports the cut
    assert len(tshark_fields(path, "frame", "frame.number", check=False)) == stats["frames"]


def test_cut_in_a_record_header_and_before_any_frame(hotspot, tmp_path):
    out, _truth = hotspot
    for name in ("lan.pcap", "lan.pcapng"):
        data = (out / name).read_bytes()
        record, number, _cut = _cut_inside_a_frame(data, 0.25)
        for cut in (record + 5, record + 11):  # inside the record / block header
            counter = ClientCounter(keep_totals=True)
            stats = count_buffer(data[:cut], counter, truncated_ok=True)
            assert stats["truncated"] and stats["frames"] == number - 1, (name, cut)
            assert stats["cut"]["byte"] == record
    pcap = (out / "lan.pcap").read_bytes()
    stats = count_buffer(pcap[:30], ClientCounter(keep_totals=True), truncated_ok=True)
    assert stats["truncated"] and stats["frames"] == 0 and stats["cut"]["byte"] == 24


def test_not_a_capture_is_still_an_error_when_cuts_are_accepted(hotspot, tmp_path):
    out, _truth = hotspot
    pcapng = (out / "lan.pcapng").read_bytes()
    pcap = (out / "lan.pcap").read_bytes()
    for data in (b"", b"\xd4\xc3", pcap[:20], pcapng[:20], b"hello, not a capture\n" * 4):
        path = tmp_path / "bad"
        path.write_bytes(data)
        with pytest.raises(CaptureError) as info:
            count_file(path, ClientCounter(keep_totals=True), truncated_ok=True)
        assert not isinstance(info.value, CaptureTruncated), data[:8]
    corrupt = bytearray(pcap)
    corrupt[24 + 8 : 24 + 12] = struct.pack("<I", 0x7FFFFFFF)  # first caplen: nonsense
    with pytest.raises(CaptureError, match="corrupt record"):
        count_buffer(bytes(corrupt), ClientCounter(keep_totals=True), truncated_ok=True)


@pytest.mark.parametrize("name", ["lan.pcap", "lan.pcapng", "air.pcap", "air.pcapng"])
def test_a_tail_of_zeros_is_a_cut_where_the_zeros_start(hotspot, name):
    """Power lost after the file grew but before its data reached the disk: the tail
    reads back as zeros. Counted up to there, like any cut, not refused as corrupt."""
    out, _truth = hotspot
    data = (out / name).read_bytes()
    record, number, _cut = _cut_inside_a_frame(data, 0.6)
    zeroed = data[:record] + bytes(4096)
    counter = ClientCounter(keep_totals=True)
    stats = count_buffer(zeroed, counter, truncated_ok=True)
    assert stats["truncated"] is True and stats["frames"] == number - 1
    assert stats["cut"]["byte"] == record and "zero bytes" in stats["cut"]["reason"]
    whole = ClientCounter(keep_totals=True)
    count_buffer(data[:record], whole)
    assert counter.totals() == whole.totals()
    with pytest.raises(CaptureTruncated):
        count_buffer(zeroed, ClientCounter(keep_totals=True))
