"""Explicit registration of collector types: the factory per `type`.

The config models and their union are the contract's (simpul_wire.config.collectors);
this is the agent's half: which class runs a validated section. Never found by scanning
folders. Collector modules import heavy libraries (scapy, pymodbus) lazily, inside
start(), so that this registry stays cheap to import.
"""

from typing import Any, Callable, Dict

from agent.collectors.base import Collector
from agent.collectors.clients import (
    DnsmasqCollector,
    HostapdCollector,
    IwCollector,
    NeighCollector,
)
from agent.collectors.clients_capture import ArpScanCollector, CaptureCollector, ProbesCollector
from agent.collectors.health import HealthCollector
from agent.collectors.modbus import ModbusCollector
from agent.collectors.pi_throttle import PiThrottleCollector
from agent.collectors.rtsp import RtspCollector
from agent.collectors.serial_sensors import SerialSensorCollector
from agent.collectors.synthetic import SyntheticCollector
from agent.collectors.tier_usage import TierUsageCollector
from agent.collectors.wan import WanCollector

FACTORIES: Dict[str, Callable[[Any], Collector]] = {
    "health": HealthCollector,
    "synthetic": SyntheticCollector,
    "pms5003": SerialSensorCollector,
    "sds011": SerialSensorCollector,
    "modbus": ModbusCollector,
    "bridge": SerialSensorCollector,
    "pi_throttle": PiThrottleCollector,
    "wan": WanCollector,
    "rtsp": RtspCollector,
    "tier_usage": TierUsageCollector,
    "clients_hostapd": HostapdCollector,
    "clients_iw": IwCollector,
    "clients_dnsmasq": DnsmasqCollector,
    "clients_neigh": NeighCollector,
    "clients_capture": CaptureCollector,
    "clients_probes": ProbesCollector,
    "clients_arpscan": ArpScanCollector,
}


def build(config: Any) -> Collector:
    """Create the collector for one validated config section."""
    return FACTORIES[config.type](config)
