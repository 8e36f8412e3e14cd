"""Every collector type's config, as one union told apart by `type`.

A new collector type adds its model here and its factory in agent.collectors.registry;
the fleet validates desired config with this union, so both sides know the same types.
"""

from typing import Annotated, Union

from pydantic import Field

from simpul_wire.config.clients import (
    ArpScanConfig,
    CaptureConfig,
    DnsmasqConfig,
    HostapdConfig,
    IwConfig,
    NeighConfig,
    ProbesConfig,
)
from simpul_wire.config.probes import (
    HealthConfig,
    PiThrottleConfig,
    RtspConfig,
    SyntheticConfig,
    TierUsageConfig,
    WanConfig,
)
from simpul_wire.config.sensors import BridgeConfig, ModbusConfig, Pms5003Config, Sds011Config

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
