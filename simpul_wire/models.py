"""Payload models of every MQTT message, with one encoder and one decoder.

Every payload carries `schema_version` and a UTC timestamp `ts`. Telemetry and health
travel as batches of records; a record's identity is (device_id, stream, epoch, seq).
Annotations use typing.Optional/List/Dict: pydantic evaluates them at run time and the
agent runs on Python 3.9.
"""

import hashlib
import json
from datetime import datetime, timezone
from typing import Annotated, Any, Dict, List, Literal, Optional, Tuple, Type, TypeVar, Union

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

SCHEMA_VERSION = 1
# Largest payload the contract allows; the broker's message_size_limit matches it.
MAX_PAYLOAD_BYTES = 256 * 1024

SourceState = Literal["ok", "unavailable", "stale"]


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class WireError(ValueError):
    """A payload that does not fit the contract; `field` names the first failing field."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.field = field


def _to_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("timestamp must carry a UTC offset")
    return value.astimezone(timezone.utc)


# A timestamp with an offset, normalised to UTC; a naive one is refused.
UtcDatetime = Annotated[datetime, AfterValidator(_to_utc)]


class _Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = 1
    device_id: str
    ts: UtcDatetime = Field(default_factory=utcnow)


class SourceStatus(BaseModel):
    """The status of one source: a sensor, a client counter, a camera, the uplink."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    state: SourceState
    reason: Optional[str] = None


class Gap(BaseModel):
    """Records from this record's seq up to `to_seq` were dropped by the box's budget."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    to_seq: int = Field(ge=0)
    reason: str


class Record(BaseModel):
    """One sample of a stream. `ts` is the box's clock, which may be wrong (no RTC)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seq: int = Field(ge=0)
    ts: UtcDatetime
    metrics: Dict[str, float] = Field(default_factory=dict)
    sources: Dict[str, SourceStatus] = Field(default_factory=dict)
    gap: Optional[Gap] = None


class TelemetryBatch(_Payload):
    """Records of one stream of one outbox epoch, oldest first."""

    stream: str = Field(default="telemetry", pattern=r"^[a-z][a-z0-9_]{0,31}$")
    epoch: str = Field(pattern=r"^[0-9a-f]{16,32}$")
    ntp_synced: Optional[bool] = None
    records: List[Record] = Field(min_length=1, max_length=2000)


class HealthBatch(TelemetryBatch):
    stream: str = Field(default="health", pattern=r"^health$")


class StatePayload(_Payload):
    """Birth (`online`, retained) and last will (`offline`, retained)."""

    state: Literal["online", "offline"]
    agent_version: Optional[str] = None
    # Changes on every agent start, so the fleet can tell a restart from a reconnect,
    # and two boxes sharing one identity (a cloned card) apart.
    boot_id: Optional[str] = None


class DesiredConfig(_Payload):
    """The managed part of the agent config the fleet wants; retained, versioned."""

    version: int = Field(ge=0)
    config: Dict[str, Any]


class ReportedConfig(_Payload):
    """What the box runs: version, hash, when applied, and the last failure if any."""

    version: int = Field(ge=0)
    config_hash: str
    applied_at: Optional[UtcDatetime] = None
    error: Optional[str] = None
    failed_version: Optional[int] = None
    tier_applied: Optional[Dict[str, float]] = None


class Command(_Payload):
    command_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")
    args: Dict[str, Any] = Field(default_factory=dict)
    expires_at: UtcDatetime


class CommandResult(_Payload):
    command_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    status: Literal["received", "succeeded", "failed", "expired", "rejected"]
    result: Dict[str, Any] = Field(default_factory=dict)
    error: Optional[str] = None


class Ack(_Payload):
    """The fleet has stored these records (or refused them for good): the box may forget them.

    `ranges` are inclusive [first, last] seq runs of one stream and epoch.
    """

    stream: str = Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")
    epoch: str = Field(pattern=r"^[0-9a-f]{16,32}$")
    ranges: List[Tuple[int, int]] = Field(min_length=1, max_length=2000)
    rejected: Optional[str] = None


def seq_ranges(seqs: List[int]) -> List[Tuple[int, int]]:
    """Compress seqs into inclusive runs: [1, 2, 3, 7] -> [(1, 3), (7, 7)]."""
    runs: List[Tuple[int, int]] = []
    for seq in sorted(set(seqs)):
        if runs and seq == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], seq)
        else:
            runs.append((seq, seq))
    return runs


class Claim(_Payload):
    """An offline-provisioned box claims its registration on its first connection.

    The site details are the ones the technician gave at install time; the fleet answers
    on the box's `ack` leaf with stream "claim" and epoch `claim_epoch(claim_code)`
    (`rejected` set when it refuses the claim).
    """

    claim_code: str = Field(min_length=6, max_length=64)
    site: Optional[str] = Field(default=None, min_length=1, max_length=200)
    district: Optional[str] = Field(default=None, min_length=1, max_length=100)
    lat: Optional[float] = Field(default=None, ge=-90, le=90)
    lon: Optional[float] = Field(default=None, ge=-180, le=180)


CLAIM_STREAM = "claim"


def claim_epoch(claim_code: str) -> str:
    """The `epoch` of the fleet's answer to a claim: ties the ack to this claim code."""
    return hashlib.sha256(claim_code.encode()).hexdigest()[:16]


Payload = Union[
    TelemetryBatch, HealthBatch, StatePayload, DesiredConfig, ReportedConfig, Command,
    CommandResult, Claim, Ack,
]
P = TypeVar("P", bound=_Payload)

# Which model a topic leaf carries.
MODEL_BY_LEAF: Dict[str, Type[_Payload]] = {
    "telemetry": TelemetryBatch,
    "health": HealthBatch,
    "state": StatePayload,
    "config/desired": DesiredConfig,
    "config/reported": ReportedConfig,
    "cmd": Command,
    "cmd/result": CommandResult,
    "claim": Claim,
    "ack": Ack,
}


def encode(payload: _Payload) -> bytes:
    return payload.model_dump_json(exclude_none=True).encode()


def decode(model: Type[P], data: bytes) -> P:
    """Parse bytes into `model`; raise WireError naming the failing field."""
    if len(data) > MAX_PAYLOAD_BYTES:
        raise WireError(f"payload of {len(data)} bytes exceeds {MAX_PAYLOAD_BYTES}", "")
    try:
        raw = json.loads(data)
    except (UnicodeDecodeError, ValueError) as exc:
        raise WireError(f"payload is not JSON: {exc}") from exc
    except RecursionError as exc:
        # "[[[[..." a few KB deep: refused, not a crash of whoever decodes it.
        raise WireError("payload is nested too deeply") from exc
    if not isinstance(raw, dict):
        raise WireError("payload must be a JSON object")
    version = raw.get("schema_version")
    if version != SCHEMA_VERSION:
        raise WireError(f"unknown schema_version {version!r}", "schema_version")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise WireError(f"{field or 'payload'}: {first['msg']}", field) from exc
