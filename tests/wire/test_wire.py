"""The wire contract: topics and payloads, and errors that name the failing field."""

import json

import pytest

from simpul_wire import (
    Ack,
    Command,
    StatePayload,
    TelemetryBatch,
    TopicError,
    WireError,
    decode,
    encode,
    parse_topic,
    seq_ranges,
    topic,
    utcnow,
)
from simpul_wire.models import MAX_PAYLOAD_BYTES, MODEL_BY_LEAF

pytestmark = pytest.mark.py39


@pytest.mark.parametrize("leaf,cmd,expected", [
    ("telemetry", None, "simpul/v1/park-01/telemetry"),
    ("config/desired", None, "simpul/v1/park-01/config/desired"),
    ("cmd", "c-1", "simpul/v1/park-01/cmd/c-1"),
    ("cmd/result", "c-1", "simpul/v1/park-01/cmd/c-1/result"),
    ("ack", None, "simpul/v1/park-01/ack"),
])
def test_topics_round_trip(leaf: str, cmd: str, expected: str) -> None:
    assert topic("park-01", leaf, cmd) == expected
    assert parse_topic(expected) == ("park-01", leaf, cmd)


@pytest.mark.parametrize("device_id", ["", "a", "Park", "park/01", "park+", "#", "-x",
                                        "a" * 64])
def test_bad_device_ids_never_reach_a_topic(device_id: str) -> None:
    with pytest.raises(TopicError):
        topic(device_id, "telemetry")


@pytest.mark.parametrize("name", ["other/v1/a1/telemetry", "simpul/v2/a1/telemetry",
                                  "simpul/v1/a1/nope", "simpul/v1/a1/cmd", "simpul/v1/a1",
                                  "simpul/v1/a1/cmd/x/y", "simpul/v1/A1/state"])
def test_foreign_topics_are_refused(name: str) -> None:
    with pytest.raises(TopicError):
        parse_topic(name)


def test_every_leaf_has_a_model() -> None:
    from simpul_wire.topics import LEAVES

    assert set(LEAVES) == set(MODEL_BY_LEAF)


def test_telemetry_round_trip_keeps_utc() -> None:
    raw = {"schema_version": 1, "device_id": "park-01", "epoch": "0123456789abcdef",
           "ts": "2026-01-01T07:00:00+07:00",
           "records": [{"seq": 3, "ts": "2026-01-01T00:00:00Z", "metrics": {"pm2_5": 12.5},
                        "sources": {"pms": {"state": "stale", "reason": "no frame for 30 s"}}}]}
    batch = decode(TelemetryBatch, json.dumps(raw).encode())
    assert batch.ts.isoformat() == "2026-01-01T00:00:00+00:00"
    again = decode(TelemetryBatch, encode(batch))
    assert again == batch
    assert again.records[0].sources["pms"].state == "stale"


@pytest.mark.parametrize("mutate,field", [
    (lambda r: r.update(schema_version=2), "schema_version"),
    (lambda r: r.pop("device_id"), "device_id"),
    (lambda r: r.update(epoch="XYZ"), "epoch"),
    (lambda r: r["records"][0].update(seq=-1), "records.0.seq"),
    (lambda r: r["records"][0].update(ts="2026-01-01T00:00:00"), "records.0.ts"),
    (lambda r: r["records"][0]["metrics"].update(pm2_5="high"), "records.0.metrics.pm2_5"),
    (lambda r: r["records"][0]["sources"].update(x={"state": "fine"}),
     "records.0.sources.x.state"),
    (lambda r: r.update(extra=1), "extra"),
    (lambda r: r.update(records=[]), "records"),
])
def test_errors_name_the_failing_field(mutate, field: str) -> None:  # type: ignore[no-untyped-def]
    raw = {"schema_version": 1, "device_id": "park-01", "epoch": "0123456789abcdef",
           "records": [{"seq": 0, "ts": "2026-01-01T00:00:00Z", "metrics": {"pm2_5": 1},
                        "sources": {}}]}
    mutate(raw)
    with pytest.raises(WireError) as err:
        decode(TelemetryBatch, json.dumps(raw).encode())
    assert err.value.field == field


@pytest.mark.parametrize("data", [b"", b"\xff\xfe", b"null", b"[]", b'"x"', b"{",
                                  b"1e999999"])
def test_garbage_is_a_wire_error(data: bytes) -> None:
    with pytest.raises(WireError):
        decode(StatePayload, data)


def test_oversized_payload_is_refused() -> None:
    with pytest.raises(WireError, match="exceeds"):
        decode(StatePayload, b" " * (MAX_PAYLOAD_BYTES + 1))


def test_command_needs_expiry_and_safe_id() -> None:
    cmd = Command(device_id="park-01", command_id="c_1", name="reboot", expires_at=utcnow())
    assert decode(Command, encode(cmd)) == cmd
    with pytest.raises(WireError):
        decode(Command, encode(cmd).replace(b"c_1", b"c/1"))


@pytest.mark.parametrize("seqs,runs", [
    ([], []), ([5], [(5, 5)]), ([3, 1, 2, 7, 8, 2], [(1, 3), (7, 8)]),
])
def test_seq_ranges(seqs, runs) -> None:  # type: ignore[no-untyped-def]
    assert seq_ranges(seqs) == runs
    if runs:
        Ack(device_id="park-01", stream="telemetry", epoch="0123456789abcdef", ranges=runs)
