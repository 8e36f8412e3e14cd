"""The state tools' view of a simulated population, in each tool's own text format.

The layouts follow what hostapd (ctrl_iface_ap.c), iw (station.c), dnsmasq (lease.c)
and iproute2 print; tests/clients/test_parsers.py also checks the parsers against
verbatim samples and, for `ip neigh` and /proc/net/arp, against the live kernel.
"""

from typing import Dict, List

from agent.clients.mac import format_mac

Client = Dict[str, object]


def _connected_s(c: Client, duration: float) -> int:
    return int(duration - float(c["join"]))  # type: ignore[arg-type]


def hostapd_sta_block(c: Client, aid: int, duration: float) -> str:
    mac = format_mac(c["mac"])  # type: ignore[arg-type]
    return (
        f"{mac}\n"
        "flags=[AUTH][ASSOC][AUTHORIZED][SHORT_PREAMBLE][WMM][HT]\n"
        f"aid={aid}\n"
        "capability=0x1411\n"
        "listen_interval=10\n"
        "supported_rates=82 84 8b 96 0c 12 18 24 30 48 60 6c\n"
        "timeout_next=NULLFUNC POLL\n"
        f"dot11RSNAStatsSTAAddress={mac}\n"
        "dot11RSNAStatsVersion=1\n"
        "dot11RSNAStatsSelectedPairwiseCipher=00-0f-ac-4\n"
        "dot11RSNAStatsTKIPLocalMICFailures=0\n"
        "dot11RSNAStatsTKIPRemoteMICFailures=0\n"
        "wpa=2\n"
        "AKMSuiteSelector=00-0f-ac-2\n"
        "hostapdWPAPTKState=11\n"
        "hostapdWPAPTKGroupState=0\n"
        "rx_packets=1520\n"
        "tx_packets=1873\n"
        "rx_bytes=190321\n"
        "tx_bytes=1893452\n"
        "inactive_msec=1200\n"
        "signal=-58\n"
        "rx_rate_info=650 mcs 7 shortGI\n"
        "tx_rate_info=722 mcs 7 shortGI\n"
        "ht_mcs_bitmask=ffff0000000000000000\n"
        f"connected_time={_connected_s(c, duration)}\n"
        "supp_op_classes=51515354737475767778797a7b7c7d7e7f808182\n"
        "ht_caps_info=0x01ef\n"
        "ext_capab=0000000000000040\n"
    )


def hostapd_all_sta(clients: List[Client], duration: float) -> str:
    return "".join(hostapd_sta_block(c, i + 1, duration) for i, c in enumerate(clients))


def iw_station_dump(clients: List[Client], duration: float, ifname: str = "wlan0") -> str:
    out = []
    for c in clients:
        out.append(
            f"Station {format_mac(c['mac'])} (on {ifname})\n"  # type: ignore[arg-type]
            "\tinactive time:\t1200 ms\n"
            "\trx bytes:\t190321\n"
            "\trx packets:\t1520\n"
            "\ttx bytes:\t1893452\n"
            "\ttx packets:\t1873\n"
            "\ttx retries:\t12\n"
            "\ttx failed:\t0\n"
            "\trx drop misc:\t0\n"
            "\tsignal:  \t-58 [-60, -61] dBm\n"
            "\tsignal avg:\t-57 [-59, -60] dBm\n"
            "\ttx bitrate:\t72.2 MBit/s MCS 7 short GI\n"
            "\trx bitrate:\t65.0 MBit/s MCS 7\n"
            "\trx duration:\t0 us\n"
            "\tauthorized:\tyes\n"
            "\tauthenticated:\tyes\n"
            "\tassociated:\tyes\n"
            "\tpreamble:\tshort\n"
            "\tWMM/WME:\tyes\n"
            "\tMFP:\t\tno\n"
            "\tTDLS peer:\tno\n"
            "\tDTIM period:\t2\n"
            "\tbeacon interval:100\n"
            "\tshort preamble:\tyes\n"
            "\tshort slot time:yes\n"
            f"\tconnected time:\t{_connected_s(c, duration)} seconds\n"
            "\tassociated at [boottime]:\t5021.713s\n"
            "\tassociated at:\t1763899400123 ms\n"
            "\tcurrent time:\t1763900000456 ms\n"
        )
    return "".join(out)


def dnsmasq_leases(clients: List[Client], end_ts: float) -> str:
    lines = []
    for i, c in enumerate(clients):
        mac = format_mac(c["mac"])  # type: ignore[arg-type]
        name = f"android-{i:04x}" if i % 3 else "*"
        lines.append(f"{int(end_ts) + 3600} {mac} {c['ip']} {name} 01:{mac}\n")
    return "".join(lines)


def ip_neigh(clients: List[Client], dev: str = "br-hotspot") -> str:
    lines = [f"{c['ip']} dev {dev} lladdr {format_mac(c['mac'])} REACHABLE\n" for c in clients]  # type: ignore[arg-type]
    lines.append(f"10.42.0.250 dev {dev} FAILED\n")  # someone who left: no lladdr
    return "".join(lines)


def proc_net_arp(clients: List[Client], dev: str = "br-hotspot") -> str:
    head = "IP address       HW type     Flags       HW address            Mask     Device\n"
    rows = [
        f"{c['ip']:<16} 0x1         0x2         {format_mac(c['mac'])}     *        {dev}\n"  # type: ignore[arg-type]
        for c in clients
    ]
    rows.append(
        f"{'10.42.0.250':<16} 0x1         0x0         00:00:00:00:00:00     *        {dev}\n"
    )
    return head + "".join(rows)
