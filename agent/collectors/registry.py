"""Explicit registration of collector types: config model and factory per `type`.

Never found by scanning folders. Collector modules import heavy libraries (scapy,
pymodbus) lazily, inside start(), so that this registry stays cheap to import.
"""

from typing import Annotated, Any, Callable, Dict, Union

from pydantic import Field

from agent.collectors.base import Collector
from agent.collectors.clients import (
    DnsmasqCollector,
    DnsmasqConfig,
    HostapdCollector,
    HostapdConfig,
    IwCollector,
    IwConfig,
    NeighCollector,
    NeighConfig,
)
from agent.collectors.clients_capture import (
    ArpScanCollector,
    ArpScanConfig,
    CaptureCollector,
    CaptureConfig,
    ProbesCollector,
    ProbesConfig,
)
from agent.collectors.health import HealthCollector, HealthConfig
from agent.collectors.modbus import ModbusCollector, ModbusConfig
from agent.collectors.pi_throttle import PiThrottleCollector, PiThrottleConfig
from agent.collectors.rtsp import RtspCollector, RtspConfig
from agent.collectors.serial_sensors import (
    BridgeConfig,
    Pms5003Config,
    Sds011Config,
    SerialSensorCollector,
)
from agent.collectors.synthetic import SyntheticCollector, SyntheticConfig
from agent.collectors.tier_usage import TierUsageCollector, TierUsageConfig
from agent.collectors.wan import WanCollector, WanConfig

CollectorConfig = Annotated[
    Union[
        HealthConfig, SyntheticConfig, Pms5003Config, Sds011Config, ModbusConfig, BridgeConfig,
        PiThrottleConfig, WanConfig, RtspConfig, TierUsageConfig,
        HostapdConfig,
        IwConfig,
        DnsmasqConfig,
        NeighConfig,
        CaptureConfig,
        ProbesConfig,
        ArpScanConfig,
    ],
    Field(discriminator="type"),
]

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
