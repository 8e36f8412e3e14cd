"""A rate-limited active ARP scan of the hotspot subnet, with scapy imported lazily.

Clients that sleep their Wi-Fi stay silent on the LAN for minutes; asking each address
once in a while finds them. The scan sends at most `rate_pps` requests a second and
refuses subnets larger than a /22, so it stays a whisper on a shared channel.
"""

from typing import List, Optional

from agent.clients.errors import ClientsError
from agent.clients.mac import parse_mac
from simpul_wire.config.clients import scan_network


def scan_targets(subnet: str, skip: Optional[str] = None) -> List[str]:
    """The addresses to ask; ClientsError for a subnet the config schema refuses."""
    try:
        net = scan_network(subnet)
    except ValueError as exc:
        raise ClientsError(str(exc)) from exc
    return [str(h) for h in net.hosts() if str(h) != skip]


def arp_scan(
    interface: str,
    subnet: str,
    rate_pps: float = 20.0,
    timeout: float = 2.0,
    skip: Optional[str] = None,
) -> List[bytes]:
    """MACs that answered; ClientsError when the interface cannot be used."""
    targets = scan_targets(subnet, skip)
    try:
        from scapy.config import conf
        from scapy.layers.l2 import ARP, Ether
        from scapy.sendrecv import srp
    except ImportError as exc:  # pragma: no cover - scapy is in the agent extra
        raise ClientsError("the ARP scan needs scapy (pip install 'simpul[agent]')") from exc
    conf.verb = 0
    probes = [Ether(dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, pdst=ip) for ip in targets]
    try:
        answered, _ = srp(
            probes, iface=interface, timeout=timeout, inter=1.0 / rate_pps, verbose=False
        )
    except (OSError, ValueError) as exc:
        raise ClientsError(f"ARP scan on {interface}: {exc}") from exc
    macs = []
    for _sent, reply in answered:
        mac = parse_mac(str(reply[ARP].hwsrc))
        if mac is not None:
            macs.append(mac)
    return macs
