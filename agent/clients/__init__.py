"""Counting hotspot clients and nearby devices, privately: parsers, capture, counter.

Pure parts (parsers, pcap, counter, identity) import nothing heavy; `live` needs root
or CAP_NET_RAW; `arpscan` imports scapy inside its function. See docs/clients.md.
"""

from agent.clients.counter import CONNECTED, INFRA, NEARBY, ClientCounter, Counts
from agent.clients.errors import CaptureError, ClientsError, ParseError
from agent.clients.identity import Keyring

__all__ = [
    "CONNECTED",
    "INFRA",
    "NEARBY",
    "CaptureError",
    "ClientCounter",
    "ClientsError",
    "Counts",
    "Keyring",
    "ParseError",
]
