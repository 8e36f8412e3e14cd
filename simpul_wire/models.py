"""Payload models of every MQTT message, with one encoder and one decoder.

Every payload carries `schema_version` and a UTC timestamp `ts`. Telemetry and health
travel as batches of records; a record's identity is (device_id, stream, epoch, seq).
Annotations use typing.Optional/List/Dict: pydantic evaluates them at run time and the
agent runs on Python 3.9.
"""

import hashlib
import json
import math
from datetime import datetime, timezone
from typing import Annotated, Any, Dict, List, Literal, Optional, Tuple, Type, TypeVar, Union

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

# decode() raises it, so importers of the models may take it from here too.
from simpul_wire.errors import WireError as WireError

SCHEMA_VERSION = 1
# Largest payload the contract allows; the broker's message_size_limit matches it.
MAX_PAYLOAD_BYTES = 256 * 1024

# -- bounds: every value the contract admits can be stored on SQLite and PostgreSQL -------
# A seq is a PostgreSQL bigint (signed 64 bits); SQLite's INTEGER is the same size.
MAX_SEQ = 2**63 - 1
# Config versions live in an `Integer` column (32 bits on PostgreSQL).
MAX_VERSION = 2**31 - 1
# Timestamps, after conversion to UTC. From the Unix epoch, where a Pi without an RTC
# starts its clock (nothing earlier is a clock reading), to the end of 9998: a day of
# margin on each side keeps any later shift (a local time at +14 h, a bucket, a
# retention cut-off) inside Python's years 1..9999, and both SQLite (ISO text) and
# PostgreSQL `timestamp` (4713 BC..294276 AD) hold every value in between.
MIN_TS = datetime(1970, 1, 1, tzinfo=timezone.utc)
MAX_TS = datetime(9998, 12, 31, 23, 59, 59, 999999, tzinfo=timezone.utc)
# Metric values: finite, and small enough that every integer is exact in a double (and in
# a browser) and that a bucket's sum over any realistic count of records stays finite.
MAX_METRIC = 1e15
# Free-form JSON (config, command args and results): nested at most this deep.
MAX_JSON_DEPTH = 32
# A name (metric, source, tag key) and a free-text field.
MAX_NAME = 128
MAX_TEXT = 2000

SourceState = Literal["ok", "unavailable", "stale"]


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _to_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("timestamp must carry a UTC offset")
    try:
        utc = value.astimezone(timezone.utc)
    except OverflowError:  # 9999-12-31T23:00-05:00, 0001-01-01T01:00+05:00
        utc = None
    if utc is None or not MIN_TS <= utc <= MAX_TS:
        raise ValueError(f"timestamp must lie between {MIN_TS:%Y-%m-%d} and "
                         f"{MAX_TS:%Y-%m-%d} in UTC")
    return utc


def _no_nul(value: str) -> str:
    # PostgreSQL text cannot hold U+0000, and a reason or name ends up in text columns.
    if "\x00" in value:
        raise ValueError("text must not contain the NUL character")
    return value


def _finite_json(value: Dict[str, Any]) -> Dict[str, Any]:
    """Free-form JSON the databases and every JSON reader take: finite numbers, integers
    within 64 bits, strings without NUL in keys, nested at most MAX_JSON_DEPTH deep."""
    todo: List[Tuple[Any, int, str]] = [(value, 1, "")]
    while todo:
        item, depth, path = todo.pop()
        if depth > MAX_JSON_DEPTH:
            raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels at {path or '.'}")
        if isinstance(item, dict):
            for key, inner in item.items():
                if "\x00" in key:
                    raise ValueError(f"a key at {path or '.'} contains the NUL character")
                todo.append((inner, depth + 1, f"{path}.{key}"[:200]))
        elif isinstance(item, list):
            todo.extend((inner, depth + 1, f"{path}[{i}]"[:200]) for i, inner in enumerate(item))
        elif isinstance(item, bool) or item is None or isinstance(item, str):
            continue
        elif isinstance(item, int) and not -2**63 <= item <= MAX_SEQ:
            raise ValueError(f"integer at {path} does not fit in 64 bits")
        elif isinstance(item, float) and not math.isfinite(item):
            raise ValueError(f"number at {path} is not finite")
    return value


# A timestamp with an offset, normalised to UTC and within MIN_TS..MAX_TS; a naive one
# is refused.
UtcDatetime = Annotated[datetime, AfterValidator(_to_utc)]
Seq = Annotated[int, Field(ge=0, le=MAX_SEQ)]
Version = Annotated[int, Field(ge=0, le=MAX_VERSION)]
# A finite number (NaN and Infinity are no reading, and JSON has no word for them).
Metric = Annotated[float, Field(allow_inf_nan=False, ge=-MAX_METRIC, le=MAX_METRIC)]
# A pattern, not a validator: checked in pydantic's core, no Python call per metric.
Name = Annotated[str, Field(min_length=1, max_length=MAX_NAME, pattern=r"^[^\x00]+$")]
Text = Annotated[str, Field(max_length=MAX_TEXT), AfterValidator(_no_nul)]
JsonObject = Annotated[Dict[str, Any], AfterValidator(_finite_json)]


class _Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = 1
    device_id: str = Field(max_length=63)
    ts: UtcDatetime = Field(default_factory=utcnow)


class SourceStatus(BaseModel):
    """The status of one source: a sensor, a client counter, a camera, the uplink."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    state: SourceState
    reason: Optional[Text] = None


class Gap(BaseModel):
    """Records from this record's seq up to `to_seq` were dropped by the box's budget."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    to_seq: Seq
    reason: Text


class Record(BaseModel):
    """One sample of a stream. `ts` is the box's clock, which may be wrong (no RTC)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seq: Seq
    ts: UtcDatetime
    # As many as fit in MAX_PAYLOAD_BYTES: a box may well carry thousands of metrics.
    metrics: Dict[Name, Metric] = Field(default_factory=dict)
    sources: Dict[Name, SourceStatus] = Field(default_factory=dict)
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
    # The sizes of the devices/births columns that keep them.
    agent_version: Optional[str] = Field(default=None, pattern=r"^[\x20-\x7e]{1,64}$")
    # Changes on every agent start, so the fleet can tell a restart from a reconnect,
    # and two boxes sharing one identity (a cloned card) apart.
    boot_id: Optional[str] = Field(default=None, pattern=r"^[A-Za-z0-9_.:-]{1,32}$")


class DesiredConfig(_Payload):
    """The managed part of the agent config the fleet wants; retained, versioned."""

    version: Version
    config: JsonObject


class ReportedConfig(_Payload):
    """What the box runs: version, hash, when applied, and the last failure if any."""

    version: Version
    config_hash: str = Field(max_length=128, pattern=r"^[\x20-\x7e]*$")
    applied_at: Optional[UtcDatetime] = None
    error: Optional[Text] = None
    failed_version: Optional[Version] = None
    tier_applied: Optional[Dict[Name, Metric]] = Field(default=None, max_length=50)


class Command(_Payload):
    command_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")
    args: JsonObject = Field(default_factory=dict)
    expires_at: UtcDatetime


class CommandResult(_Payload):
    command_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    status: Literal["received", "succeeded", "failed", "expired", "rejected"]
    result: JsonObject = Field(default_factory=dict)
    error: Optional[Text] = None


class Ack(_Payload):
    """The fleet has stored these records (or refused them for good): the box may forget them.

    `ranges` are inclusive [first, last] seq runs of one stream and epoch.
    """

    stream: str = Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")
    epoch: str = Field(pattern=r"^[0-9a-f]{16,32}$")
    ranges: List[Tuple[Seq, Seq]] = Field(min_length=1, max_length=2000)
    rejected: Optional[Text] = None


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

    # As typed at install time (normalise_code() on the fleet tidies spaces and case).
    claim_code: str = Field(min_length=6, max_length=64, pattern=r"^[^\x00]+$")
    site: Optional[str] = Field(default=None, min_length=1, max_length=200,
                                pattern=r"^[^\x00]+$")
    district: Optional[str] = Field(default=None, min_length=1, max_length=100,
                                    pattern=r"^[^\x00]+$")
    lat: Optional[float] = Field(default=None, ge=-90, le=90, allow_inf_nan=False)
    lon: Optional[float] = Field(default=None, ge=-180, le=180, allow_inf_nan=False)


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
    """Parse bytes into `model`; raise WireError naming the failing field.

    pydantic's own JSON parser decides (it refuses lone surrogates, which json.loads lets
    through and no database or JSON writer takes); json.loads only words a refusal."""
    if len(data) > MAX_PAYLOAD_BYTES:
        raise WireError(f"payload of {len(data)} bytes exceeds {MAX_PAYLOAD_BYTES}", "")
    try:
        return model.model_validate_json(data)
    except ValidationError as exc:
        raise _explain(data, exc) from exc


def _explain(data: bytes, exc: ValidationError) -> WireError:
    try:
        raw = json.loads(data)
    except (UnicodeDecodeError, ValueError) as err:
        return WireError(f"payload is not JSON: {err}")
    except RecursionError:
        # "[[[[..." a few KB deep: refused, not a crash of whoever decodes it.
        return WireError("payload is nested too deeply")
    if not isinstance(raw, dict):
        return WireError("payload must be a JSON object")
    version = raw.get("schema_version")
    if version != SCHEMA_VERSION:
        return WireError(f"unknown schema_version {repr(version)[:40]}", "schema_version")
    first = exc.errors(include_url=False)[0]
    # A loc may hold the sender's dict keys: no NUL from them reaches a log or a database.
    field = ".".join(str(p) for p in first["loc"])[:200].replace("\x00", "\\x00")
    return WireError(f"{field or 'payload'}: {first['msg']}", field)
