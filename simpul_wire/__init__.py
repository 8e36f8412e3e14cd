"""The one wire contract shared by agent, fleet_api and simulator.

    models.py, topics.py   MQTT payloads and topics        errors.py  its exceptions
    config/                the box's TOML file and desired config (schema only)
    bundle.py              the signed update bundle        ids.py     DeviceId
    transport.py           how both ends tune the MQTT socket

Importing it needs pydantic only (bundle signing and checking: cryptography, lazily),
so a box never pulls in the fleet side, nor the fleet the agent.
"""

from simpul_wire.ids import DeviceId
from simpul_wire.models import (
    CLAIM_STREAM,
    SCHEMA_VERSION,
    Ack,
    Claim,
    Command,
    CommandResult,
    DesiredConfig,
    HealthBatch,
    Record,
    ReportedConfig,
    SourceStatus,
    StatePayload,
    TelemetryBatch,
    WireError,
    claim_epoch,
    decode,
    encode,
    seq_ranges,
    utcnow,
)
from simpul_wire.topics import LEAVES, TopicError, parse_topic, topic, valid_device_id

__all__ = [
    "CLAIM_STREAM",
    "LEAVES",
    "SCHEMA_VERSION",
    "Ack",
    "Claim",
    "Command",
    "CommandResult",
    "DesiredConfig",
    "DeviceId",
    "HealthBatch",
    "Record",
    "ReportedConfig",
    "SourceStatus",
    "StatePayload",
    "TelemetryBatch",
    "TopicError",
    "WireError",
    "claim_epoch",
    "decode",
    "encode",
    "parse_topic",
    "seq_ranges",
    "topic",
    "utcnow",
    "valid_device_id",
]
