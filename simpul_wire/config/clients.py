"""Config of the client counters: the hotspot's state tools (hostapd, iw, dnsmasq, the
neighbour table) and the listeners (capture, probe requests, ARP scan). The counters
are agent.collectors.clients and agent.collectors.clients_capture."""

import ipaddress
from typing import List, Literal, Optional

from pydantic import Field, field_validator, model_validator

from simpul_wire.config.base import NAME, Strict

# The ARP scan's largest subnet: a /22. A bigger one would shout on a shared channel.
MAX_SCAN_HOSTS = 1024


def scan_network(subnet: str) -> "ipaddress.IPv4Network":
    """The subnet an ARP scan may cover; ValueError says why one may not."""
    try:
        net = ipaddress.ip_network(subnet, strict=False)
    except ValueError as exc:
        raise ValueError(f"subnet {subnet!r}: {exc}") from exc
    if not isinstance(net, ipaddress.IPv4Network):
        raise ValueError(f"subnet {subnet}: ARP is IPv4 only")
    if net.num_addresses > MAX_SCAN_HOSTS + 2:
        raise ValueError(f"subnet {subnet}: larger than a /22; scan a smaller one")
    return net


class StateToolConfig(Strict):
    """What every state-tool counter has."""

    idle_s: float = Field(default=300.0, gt=0, le=86400)
    timeout_s: float = Field(default=5.0, gt=0, le=60)


class HostapdConfig(StateToolConfig):
    type: Literal["clients_hostapd"]
    name: str = Field(default="hostapd", pattern=NAME)
    ctrl_path: Optional[str] = None
    command: Optional[List[str]] = None  # e.g. ["hostapd_cli", "-i", "wlan0", "all_sta"]

    @model_validator(mode="after")
    def _one_source(self) -> "HostapdConfig":
        if (self.ctrl_path is None) == (self.command is None):
            raise ValueError("set exactly one of ctrl_path or command")
        return self


class IwConfig(StateToolConfig):
    type: Literal["clients_iw"]
    name: str = Field(default="iw", pattern=NAME)
    interface: str = "wlan0"
    command: Optional[List[str]] = None  # defaults to ["iw", "dev", interface, "station", "dump"]


class DnsmasqConfig(StateToolConfig):
    type: Literal["clients_dnsmasq"]
    name: str = Field(default="leases", pattern=NAME)
    leases_path: str = "/var/lib/misc/dnsmasq.leases"


class NeighConfig(StateToolConfig):
    type: Literal["clients_neigh"]
    name: str = Field(default="neigh", pattern=NAME)
    device: Optional[str] = None
    source: Literal["ip", "proc"] = "ip"
    proc_path: str = "/proc/net/arp"


class CaptureConfig(Strict):
    type: Literal["clients_capture"]
    name: str = Field(default="capture", pattern=NAME)
    interface: str
    idle_s: float = Field(default=300.0, gt=0, le=86400)


class ProbesConfig(Strict):
    type: Literal["clients_probes"]
    name: str = Field(default="probes", pattern=NAME)
    interface: str


class ArpScanConfig(Strict):
    type: Literal["clients_arpscan"]
    name: str = Field(default="arpscan", pattern=NAME)
    interface: str
    subnet: str
    rate_pps: float = Field(default=20.0, gt=0, le=200)
    every_s: float = Field(default=300.0, ge=10, le=86400)
    idle_s: float = Field(default=900.0, gt=0, le=86400)

    @field_validator("subnet")
    @classmethod
    def _subnet(cls, value: str) -> str:
        scan_network(value)
        return value
