"""Each state-tool parser against its tool's real output format, and against garbage."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.clients.errors import ParseError
from agent.clients.mac import is_locally_administered, parse_mac, redact_macs
from agent.clients.parsers import (
    Stations,
    parse_dnsmasq_leases,
    parse_hostapd_sta,
    parse_ip_neigh,
    parse_iw_station_dump,
    parse_proc_net_arp,
)

pytestmark = pytest.mark.py39

M1, M2, M3 = "e8:84:a5:2c:0e:bb", "9a:75:ab:b5:34:cb", "00:1c:bf:12:34:56"

# As hostapd_cli prints it (ctrl_iface_ap.c + wpa_auth.c MIB fields), two stations
HOSTAPD_ALL_STA = f"""Selected interface 'wlan0'
{M1}
flags=[AUTH][ASSOC][AUTHORIZED][SHORT_PREAMBLE][WMM][HT][HE]
aid=1
capability=0x431
listen_interval=10
supported_rates=02 04 0b 16 0c 12 18 24 30 48 60 6c
timeout_next=NULLFUNC POLL
dot11RSNAStatsSTAAddress={M1}
dot11RSNAStatsVersion=1
dot11RSNAStatsSelectedPairwiseCipher=00-0f-ac-4
dot11RSNAStatsTKIPLocalMICFailures=0
dot11RSNAStatsTKIPRemoteMICFailures=0
wpa=2
AKMSuiteSelector=00-0f-ac-2
hostapdWPAPTKState=11
hostapdWPAPTKGroupState=0
rx_packets=432
tx_packets=164
rx_bytes=85643
tx_bytes=89672
inactive_msec=220
signal=-75
rx_rate_info=20
tx_rate_info=300
connected_time=60
{M2}
flags=[AUTH][ASSOC][AUTHORIZED][WMM][HT][VHT][HE]
aid=2
capability=0x111
listen_interval=1
supported_rates=8c 12 98 24 b0 48 60 6c
timeout_next=NULLFUNC POLL
dot11RSNAStatsSTAAddress={M2}
hostapdMFPR=0
rx_vht_mcs_map=fffa
ht_mcs_bitmask=ffff0000000000000000
last_ack_signal=-41
connected_time=14521
supp_op_classes=8151525354737475767778797a7b7c7d7e7f808182
"""

M4, M5, M6 = "3c:22:fb:90:11:07", "f2:6b:1e:4d:88:a0", "b8:27:eb:5a:00:42"

# STA-FIRST / all_sta blocks of stations that are not associated: hostapd keeps a
# sta_info from the Authentication frame on, prints flags=[AUTH] until the Association
# Request, and flags= for one with no flag at all (ap_sta_flags_txt prints nothing).
HOSTAPD_AUTH_ONLY = f"""{M4}
flags=[AUTH]
aid=0
capability=0x0
listen_interval=0
supported_rates=
timeout_next=NULLFUNC POLL
rx_packets=2
tx_packets=2
rx_bytes=120
tx_bytes=60
inactive_msec=40
signal=-81
rx_rate_info=10
tx_rate_info=10
"""
HOSTAPD_NO_FLAGS = f"""{M5}
flags=
aid=0
capability=0x0
listen_interval=0
supported_rates=
timeout_next=NULLFUNC POLL
"""
# Associated, with hostapd's "[PENDING_POLL" that has no closing bracket.
HOSTAPD_PENDING_POLL = f"""{M6}
flags=[AUTH][ASSOC][AUTHORIZED][PENDING_POLL[SHORT_PREAMBLE][WMM][HT]
aid=3
capability=0x1431
listen_interval=10
supported_rates=82 84 8b 96 0c 12 18 24 30 48 60 6c
timeout_next=NULLFUNC POLL
rx_packets=88
tx_packets=41
rx_bytes=9120
tx_bytes=5333
inactive_msec=59800
signal=-70
rx_rate_info=60
tx_rate_info=650 mcs 7 shortGI
connected_time=903
"""

IW_DUMP = f"""Station {M1} (on wlan0)
\tinactive time:\t300 ms
\trx bytes:\t2349802
\trx packets:\t17435
\ttx bytes:\t3407582
\ttx packets:\t9843
\ttx retries:\t208
\ttx failed:\t0
\tbeacon loss:\t0
\trx drop misc:\t52
\tsignal:  \t-51 [-54, -54] dBm
\tsignal avg:\t-50 [-53, -53] dBm
\ttx bitrate:\t866.7 MBit/s VHT-MCS 9 80MHz short GI VHT-NSS 2
\trx bitrate:\t780.0 MBit/s VHT-MCS 8 80MHz short GI VHT-NSS 2
\trx duration:\t0 us
\tauthorized:\tyes
\tauthenticated:\tyes
\tassociated:\tyes
\tpreamble:\tlong
\tWMM/WME:\tyes
\tMFP:\t\tno
\tTDLS peer:\tno
\tDTIM period:\t2
\tbeacon interval:100
\tshort slot time:yes
\tconnected time:\t1234 seconds
\tassociated at [boottime]:\t98212.811s
\tassociated at:\t1700000000123 ms
\tcurrent time:\t1700001234567 ms
Station {M2} (on wlan0)
\tinactive time:\t10 ms
\trx bytes:\t100
\tconnected time:\t5 seconds
"""

LEASES = f"""1763903600 {M1} 10.42.0.10 android-4f2a 01:{M1}
0 {M2} 10.42.0.11 * *
1000 {M3} 10.42.0.12 old-laptop *
duid 00:01:00:01:2c:5e:1f:33:02:42:ac:11:00:02
1763903600 1234567 fd00::10 phone 00:01:00:01:2a:aa:bb:cc:dd:ee:ff:00:11
"""

# lease.c puts "%.2x-" (the ARP hardware type) before an address that is not Ethernet or
# is empty: IEEE 802 (6), InfiniBand (32 = 0x20, 20 bytes), and type 0 with no address.
LEASES_OTHER_HW = """1763903600 06-00:1c:bf:12:34:57 10.42.0.20 tokenring-pc *
1763903600 20-80:00:02:08:fe:80:00:00:00:00:00:00:00:02:c9:03:00:0a:bc:de 10.42.0.21 \
ib-node ff:00:00:00:00:00:02:00:00:02:c9:00:00:02:c9:03:00:0a:bc:de
0 00- 10.42.0.22 * 01:00:1c:bf:12:34:58
1000 06-00:1c:bf:12:34:59 10.42.0.23 gone *
"""

IP_NEIGH = f"""10.42.0.10 dev br-hotspot lladdr {M1} REACHABLE
10.42.0.11 dev br-hotspot lladdr {M2} STALE
10.42.0.13 dev br-hotspot  FAILED
10.42.0.14 dev br-hotspot  INCOMPLETE
192.0.2.1 dev eth0 lladdr {M3} router REACHABLE
fe80::1 dev br-hotspot lladdr {M3} router STALE
"""

PROC_ARP = f"""IP address       HW type     Flags       HW address            Mask     Device
10.42.0.10       0x1         0x2         {M1}     *        br-hotspot
10.42.0.13       0x1         0x0         00:00:00:00:00:00     *        br-hotspot
192.0.2.1        0x1         0x2         {M3}     *        eth0
"""


def macs(stations):
    return [s.mac for s in stations]


def m(text):
    return parse_mac(text)


def test_hostapd_all_sta():
    stations = parse_hostapd_sta(HOSTAPD_ALL_STA)
    assert macs(stations) == [m(M1), m(M2)]
    assert [s.connected_s for s in stations] == [60.0, 14521.0]


def test_hostapd_empty_and_errors():
    assert parse_hostapd_sta("") == []
    with pytest.raises(ParseError, match="FAIL"):
        parse_hostapd_sta("FAIL\n")
    with pytest.raises(ParseError, match="line 1"):
        parse_hostapd_sta("flags=[AUTH]\n")  # a field before any station


def test_hostapd_counts_only_associated_stations():
    text = (
        HOSTAPD_ALL_STA.replace(f"{M2}\n", HOSTAPD_AUTH_ONLY + f"{M2}\n", 1)
        + HOSTAPD_NO_FLAGS
        + HOSTAPD_PENDING_POLL
    )
    stations = parse_hostapd_sta(text)
    assert macs(stations) == [m(M1), m(M2), m(M6)]
    assert [s.connected_s for s in stations] == [60.0, 14521.0, 903.0]
    assert stations.skipped == 2
    assert stations.reason == "hostapd stations not associated, not counted: 2"
    assert parse_hostapd_sta(HOSTAPD_ALL_STA).reason is None


def test_hostapd_sta_first_reply_of_a_station_not_associated():
    # The control socket answers one block per STA-FIRST / STA-NEXT.
    for block in (HOSTAPD_AUTH_ONLY, HOSTAPD_NO_FLAGS):
        stations = parse_hostapd_sta(block)
        assert stations == [] and stations.skipped == 1
        assert redact_macs(stations.reason or "") == stations.reason


def test_hostapd_block_without_flags_is_not_hostapd():
    with pytest.raises(ParseError, match="line 2: station without a flags= line"):
        parse_hostapd_sta(f"Selected interface 'wlan0'\n{M1}\naid=1\nconnected_time=5\n")


def test_stations_joined_adds_up_what_was_skipped():
    parts = [parse_hostapd_sta(b) for b in (HOSTAPD_AUTH_ONLY, HOSTAPD_PENDING_POLL)]
    joined = Stations.joined(parts)
    assert macs(joined) == [m(M6)] and joined.skipped == 1
    assert joined.reason == "hostapd stations not associated, not counted: 1"


def test_iw_station_dump():
    stations = parse_iw_station_dump(IW_DUMP)
    assert macs(stations) == [m(M1), m(M2)]
    assert [s.connected_s for s in stations] == [1234.0, 5.0]
    assert parse_iw_station_dump("") == []


def test_dnsmasq_leases_skips_expired_and_ipv6():
    assert macs(parse_dnsmasq_leases(LEASES)) == [m(M1), m(M2), m(M3)]
    assert macs(parse_dnsmasq_leases(LEASES, now=1763900000)) == [m(M1), m(M2)]


def test_dnsmasq_skips_non_ethernet_and_empty_hardware_lines():
    text = LEASES.replace("duid ", LEASES_OTHER_HW + "1763903600 * 10.42.0.24 * *\nduid ", 1)
    stations = parse_dnsmasq_leases(text)
    assert macs(stations) == [m(M1), m(M2), m(M3)]
    assert stations.skipped == 5
    assert stations.reason == (
        "dnsmasq lease lines with a non-Ethernet or empty hardware address, not counted: 5"
    )
    current = parse_dnsmasq_leases(text, now=1763900000)
    assert macs(current) == [m(M1), m(M2)]
    assert current.skipped == 4  # the expired one is not current anyway
    assert parse_dnsmasq_leases(LEASES).reason is None


def test_dnsmasq_bad_address_after_a_type_prefix_is_garbage():
    with pytest.raises(ParseError, match=r"line 2: .* is not a hardware address"):
        parse_dnsmasq_leases(f"0 {M1} 10.0.0.1 a *\n0 06-zz:00 10.0.0.2 b *\n")


def test_ip_neigh_live_states_only():
    assert macs(parse_ip_neigh(IP_NEIGH)) == [m(M1), m(M2), m(M3), m(M3)]
    assert macs(parse_ip_neigh(IP_NEIGH, device="br-hotspot")) == [m(M1), m(M2), m(M3)]


def test_proc_net_arp():
    assert macs(parse_proc_net_arp(PROC_ARP)) == [m(M1), m(M3)]
    assert macs(parse_proc_net_arp(PROC_ARP, device="br-hotspot")) == [m(M1)]


@pytest.mark.parametrize(
    "parser, text, where",
    [
        (parse_hostapd_sta, f"{M1}\nthis is not hostapd\n", "line 2"),
        (parse_iw_station_dump, "Stations: none\n", "line 1"),
        (parse_iw_station_dump, f"Station {M1} (on wlan0)\nrogue line\n", "line 2"),
        (parse_dnsmasq_leases, "1763903600 zz:zz 10.0.0.1 a *\n", "line 1"),
        (parse_dnsmasq_leases, "garbage\n", "line 1"),
        (parse_ip_neigh, "hello world\n", "line 1"),
        (parse_ip_neigh, "10.0.0.1 dev br0 lladdr nonsense REACHABLE\n", "line 1"),
        (parse_proc_net_arp, "no header\n", "line 1"),
        (parse_proc_net_arp, PROC_ARP + "10.0.0.9 0x1 0xZZ x * br0\n", "line 5"),
        (parse_hostapd_sta, "\x00\x01\x02binary", "binary"),
    ],
)
def test_garbage_names_the_line(parser, text, where):
    with pytest.raises(ParseError, match=where):
        parser(text)


@pytest.mark.parametrize(
    "parser",
    [
        parse_hostapd_sta,
        parse_iw_station_dump,
        parse_dnsmasq_leases,
        parse_ip_neigh,
        parse_proc_net_arp,
    ],
)
@given(text=st.text(max_size=300))
def test_any_text_parses_or_raises_parse_error(parser, text):
    try:
        result = parser(text)
    except ParseError:
        return
    assert all(len(s.mac) == 6 for s in result)


def test_simulator_fixtures_match_population(hotspot):
    out, truth = hotspot
    n = truth["state_connected"]
    assert n > 0
    fixtures = [
        parse_hostapd_sta((out / "hostapd_all_sta.txt").read_text()),
        parse_iw_station_dump((out / "iw_station_dump.txt").read_text()),
        parse_dnsmasq_leases((out / "dnsmasq.leases").read_text(), now=truth["lan_end_ts"]),
        parse_ip_neigh((out / "ip_neigh.txt").read_text()),
        parse_proc_net_arp((out / "proc_net_arp.txt").read_text()),
    ]
    population = {m(x) for x in truth["population_macs"]}
    for stations in fixtures:
        assert len(stations) == n
        assert {s.mac for s in stations} <= population
    assert len({frozenset(s.mac for s in f) for f in fixtures}) == 1  # the same clients


def test_mac_helpers():
    assert parse_mac("E8-84-A5-2C-0E-BB") == m(M1)
    assert parse_mac("e8:84-a5:2c:0e:bb") is None
    assert parse_mac("e884.a52c.0ebb") is None
    assert is_locally_administered(m(M2)) and not is_locally_administered(m(M1))
