"""Property fuzzing of the parsers that face the outside: MQTT payloads (every model of
the wire contract), the agent's TOML config, and the ingest's batch builder.

No parser may raise anything but its own documented error (WireError, ConfigError; the
ingest never raises and counts each refusal), and none may hang: each example has a
deadline. bench/fuzz_atheris.py runs the same targets coverage-guided.
"""

import json
import math
from datetime import datetime, timedelta, timezone
from typing import Any, Dict, List

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simpul_wire.config import parse_config
from simpul_wire.errors import ConfigError
from simpul_wire.models import MODEL_BY_LEAF, TelemetryBatch, WireError, decode

FUZZ = settings(max_examples=100, deadline=timedelta(seconds=2),
                suppress_health_check=[HealthCheck.too_slow])

# JSON values, including the awkward ones: huge numbers, NaN-like floats, deep nesting.
json_scalars = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
                | st.text(max_size=30))
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=5)
                           | st.dictionaries(st.text(max_size=10), inner, max_size=5),
                           max_leaves=30)
KEYS = ["schema_version", "device_id", "ts", "stream", "epoch", "records", "seq", "metrics",
        "sources", "gap", "state", "version", "config", "command_id", "name", "args",
        "expires_at", "status", "ranges", "claim_code", "config_hash", "to_seq", "reason"]


def valid_batch() -> Dict[str, Any]:
    return {"schema_version": 1, "device_id": "box-01", "ts": "2026-11-23T08:00:00Z",
            "stream": "telemetry", "epoch": "0123456789abcdef",
            "records": [{"seq": 0, "ts": "2026-11-23T08:00:00Z", "metrics": {"pm2_5": 1.5},
                         "sources": {"pms": {"state": "ok"}}}]}


@st.composite
def near_valid(draw: st.DrawFn) -> bytes:
    """A valid batch with one key replaced, added or removed, at the top or in a record."""
    body = valid_batch()
    target = body if draw(st.booleans()) else body["records"][0]
    key = draw(st.sampled_from(KEYS))
    action = draw(st.sampled_from(["set", "drop"]))
    if action == "set":
        target[key] = draw(json_values)
    else:
        target.pop(key, None)
    return json.dumps(body, allow_nan=True).encode()


payloads = (st.binary(max_size=600)
            | json_values.map(lambda v: json.dumps(v).encode())
            | st.dictionaries(st.sampled_from(KEYS), json_values, max_size=8).map(
                lambda d: json.dumps({"schema_version": 1, **d}).encode())
            | near_valid()
            | st.integers(1, 5000).map(lambda n: b"[" * n + b"]" * n)
            | st.sampled_from([b"NaN", b"1e999999", b'{"schema_version": 1e400}',
                               b"\xff\xfe{}", b'"\\ud800"']))


@FUZZ
@given(model=st.sampled_from(sorted(MODEL_BY_LEAF)), data=payloads)
def test_decode_raises_only_wire_error(model: str, data: bytes) -> None:
    try:
        decode(MODEL_BY_LEAF[model], data)
    except WireError:
        pass


def test_a_valid_batch_still_decodes() -> None:
    """The fuzz above would pass for a decoder that refuses everything; this one not."""
    batch = decode(TelemetryBatch, json.dumps(valid_batch()).encode())
    assert batch.records[0].metrics == {"pm2_5": 1.5}


# -- the agent's TOML config ---------------------------------------------------------------

SECTIONS = ["device", "broker", "control", "publish", "outbox", "tier"]
FIELDS = ["device_id", "data_dir", "url", "username", "password_file", "keepalive_s",
          "sample_interval_s", "health_interval_s", "batch_max_records", "max_inflight",
          "max_bytes", "max_age_s", "resend_after_s", "down_mbps", "up_mbps", "type", "name",
          "values", "stream", "reboot_command", "tier_interface", "interface"]
toml_keys = st.sampled_from(FIELDS) | st.from_regex(r"[a-z_]{1,12}", fullmatch=True)
toml_scalars = (st.booleans() | st.integers(-2**70, 2**70)
                | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=20)
                | st.datetimes(timezones=st.none() | st.just(timezone.utc)))
toml_values = st.recursive(toml_scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(toml_keys, inner, max_size=4), max_leaves=12)


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a TOML basic string
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + "}"


@st.composite
def toml_documents(draw: st.DrawFn) -> str:
    """TOML-shaped configs: the real sections and keys with values of any type."""
    lines: List[str] = []
    if draw(st.booleans()):
        lines += ["[device]", 'device_id = "box-01"']
    for section in draw(st.lists(st.sampled_from(SECTIONS), max_size=4, unique=True)):
        lines.append(f"[{section}]")
        for key, value in draw(st.dictionaries(toml_keys, toml_values, max_size=5)).items():
            lines.append(f"{json.dumps(key)} = {toml_value(value)}")
    for _ in range(draw(st.integers(0, 2))):
        lines.append("[[collectors]]")
        for key, value in draw(st.dictionaries(toml_keys, toml_values, max_size=4)).items():
            lines.append(f"{json.dumps(key)} = {toml_value(value)}")
    return "\n".join(lines) + "\n"


@FUZZ
@given(text=st.text(max_size=400) | toml_documents())
def test_parse_config_raises_only_config_error(text: str) -> None:
    try:
        parse_config(text)
    except ConfigError:
        pass


def test_a_valid_config_still_parses() -> None:
    config = parse_config('[device]\ndevice_id = "box-01"\n')
    assert config.device.device_id == "box-01"


# -- the ingest's batch builder ---------------------------------------------------------

topics = (st.text(max_size=60)
          | st.builds(lambda d, leaf: f"simpul/v1/{d}/{leaf}",
                      st.sampled_from(["box-01", "other-02", "BAD", "", "+", "#"]),
                      st.sampled_from(["telemetry", "health", "state", "config/reported",
                                       "cmd/x1/result", "claim", "ack", "cmd", "nope"])))


@FUZZ
@given(batch=st.lists(st.tuples(topics, payloads, st.booleans()), min_size=1, max_size=8))
def test_ingest_build_never_raises_and_counts_refusals(batch: List[Any]) -> None:
    from fleet_api.db import make_engine, utcnow
    from fleet_api.ingest.consumer import Ingest, Message
    from simpul_wire.topics import TopicError, parse_topic

    ingest = Ingest(make_engine("sqlite:///:memory:"), "127.0.0.1", 1, "u", "p")
    messages = [Message(t, p, i + 1, 1, r) for i, (t, p, r) in enumerate(batch)]
    built = ingest.build(messages, utcnow())
    # Every message on a foreign topic is a counted refusal, with its reason.
    foreign = 0
    for message in messages:
        try:
            parse_topic(message.topic)
        except TopicError:
            foreign += 1
    assert len(built.rejected) >= foreign
    assert all(r["reason"] for r in built.rejected)
    # Telemetry that decodes is stored; telemetry that does not is refused: nothing else.
    records = 0
    refusals = 0
    for message in messages:
        try:
            device_id, leaf, _ = parse_topic(message.topic)
        except TopicError:
            continue
        if leaf not in ("telemetry", "health"):
            continue
        try:
            decoded = decode(TelemetryBatch, message.payload)
        except WireError:
            refusals += 1
            continue
        if (decoded.device_id != device_id or (decoded.stream == "health") != (leaf == "health")):
            refusals += 1
        else:
            records += len(decoded.records)
    assert len(built.rows) == records
    assert len(built.rejected) >= foreign + refusals


def test_a_good_message_builds_rows() -> None:
    from fleet_api.db import make_engine, utcnow
    from fleet_api.ingest.consumer import Ingest, Message

    ingest = Ingest(make_engine("sqlite:///:memory:"), "127.0.0.1", 1, "u", "p")
    body = json.dumps(valid_batch()).encode()
    built = ingest.build([Message("simpul/v1/box-01/telemetry", body, 1, 1, False)], utcnow())
    assert len(built.rows) == 1 and not built.rejected
