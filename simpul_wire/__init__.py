"""The one wire contract shared by agent, fleet_api and simulator.

Importing it needs pydantic only, so a box never pulls in the fleet side.
"""

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
