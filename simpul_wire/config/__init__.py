"""The config schema both sides share: the box's TOML file and the fleet's desired config.

    sections.py    [device], [broker], ... [segmentation]; ManagedConfig, AgentConfig
    collectors.py  CollectorConfig, the union of every collector type's model
    sensors.py     serial and Modbus sensors    registers.py  a Modbus register entry
    clients.py     client counters              probes.py     health, WAN, RTSP, ...
    parse.py       parse_config, parse_managed, explain

Schema only: no I/O and no collector code (that is agent.collectors), so the fleet
validates desired config with pydantic alone.
"""

from simpul_wire.config.collectors import CollectorConfig
from simpul_wire.config.parse import explain, parse_config, parse_managed
from simpul_wire.config.sections import (
    AgentConfig,
    BrokerSection,
    ClaimSection,
    ControlSection,
    DeviceSection,
    ManagedConfig,
    OutboxSection,
    PublishSection,
    SegmentationSection,
    TierSection,
    UpdateSection,
)

__all__ = [
    "AgentConfig",
    "BrokerSection",
    "ClaimSection",
    "CollectorConfig",
    "ControlSection",
    "DeviceSection",
    "ManagedConfig",
    "OutboxSection",
    "PublishSection",
    "SegmentationSection",
    "TierSection",
    "UpdateSection",
    "explain",
    "parse_config",
    "parse_managed",
]
