"""Property tests over the payload models and the store (issue 16, items 6 and 7).

Integers of any size, every date the ISO 8601 grammar can spell, every float, deep and
wide JSON: the contract either refuses a payload with a WireError naming the field, or
what it admits is finite, in range, and stored by the ingest's own write path on SQLite
and on PostgreSQL. No example may stall the store: every message ends up stored or
rejected, never left for a retry.
"""

import json
import math
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from fleet_api.broker.mqtt_link import Message
from fleet_api.db import devices, make_engine, migrate, records, rejects, utcnow
from fleet_api.ingest.consumer import Ingest
from fleet_api.ingest.store import Batch
from simpul_wire.models import (
    MAX_METRIC,
    MAX_SEQ,
    MAX_TS,
    MIN_TS,
    CommandResult,
    TelemetryBatch,
    WireError,
    decode,
)
from tests.fleet.conftest import create_pg_database, drop_pg_database, pg_base

PURE = settings(max_examples=500, deadline=None)
STORED = settings(max_examples=150, deadline=None,
                  suppress_health_check=[HealthCheck.too_slow,
                                         HealthCheck.function_scoped_fixture])
BOX = "prop-box"
EPOCH = "0123456789abcdef"


def batch(record: Dict[str, Any], **top: Any) -> bytes:
    body = {"schema_version": 1, "device_id": BOX, "epoch": EPOCH,
            "records": [{"seq": 0, "ts": "2026-01-01T00:00:00Z", **record}], **top}
    return json.dumps(body, allow_nan=True).encode()


def admitted(payload: bytes) -> Any:
    """The decoded batch, or None when the contract refuses it with a WireError."""
    try:
        return decode(TelemetryBatch, payload)
    except WireError as exc:
        assert str(exc), "a refusal always says why"
        return None


# -- integers ------------------------------------------------------------------------------

any_int = st.integers() | st.integers(min_value=-2**200, max_value=2**200) | st.sampled_from(
    [2**63 - 1, 2**63, 2**64, -1, -2**63, 10**400])


@PURE
@given(seq=any_int, to_seq=any_int)
def test_any_integer_seq_is_refused_or_a_bigint(seq: int, to_seq: int) -> None:
    got = admitted(batch({"seq": seq, "gap": {"to_seq": to_seq, "reason": "budget"}}))
    fits = 0 <= seq <= MAX_SEQ and 0 <= to_seq <= MAX_SEQ
    assert (got is not None) == fits
    if got is not None:
        assert got.records[0].seq == seq


# -- dates ---------------------------------------------------------------------------------

digits = st.integers(0, 99).map(lambda n: f"{n:02d}")
fraction = st.text("0123456789", min_size=1, max_size=12).map(lambda d: "." + d) | st.just("")
offset = (st.sampled_from(["Z", "z", ""])
          | st.tuples(st.sampled_from("+-"), digits, st.sampled_from([":", ""]), digits).map(
              "".join)
          | st.tuples(st.sampled_from("+-"), digits).map("".join))


@st.composite
def iso_strings(draw: st.DrawFn) -> str:
    """Strings the ISO 8601 grammar can spell, valid calendar values or not: calendar,
    week and ordinal dates, basic and extended, reduced and expanded years, any
    fraction, every offset form."""
    year = draw(st.integers(0, 9999).map(lambda y: f"{y:04d}")
                | st.tuples(st.sampled_from("+-"), st.integers(0, 999999)).map(
                    lambda t: f"{t[0]}{t[1]:06d}"))
    sep = draw(st.sampled_from(["-", ""]))
    date = draw(st.sampled_from(["calendar", "week", "ordinal"]))
    if date == "calendar":
        day = f"{year}{sep}{draw(digits)}{sep}{draw(digits)}"
    elif date == "week":
        day = f"{year}{sep}W{draw(digits)}{sep}{draw(st.integers(0, 9))}"
    else:
        day = f"{year}{sep}{draw(st.integers(0, 999)):03d}"
    if not draw(st.booleans()):
        return day
    tsep = ":" if sep else draw(st.sampled_from([":", ""]))
    parts = [draw(digits) for _ in range(draw(st.integers(1, 3)))]
    clock = tsep.join(parts) + (draw(fraction) if len(parts) == 3 else "")
    return f"{day}{draw(st.sampled_from(['T', 't', ' ']))}{clock}{draw(offset)}"


offsets = st.builds(lambda m: timezone(timedelta(minutes=m)),
                    st.integers(-23 * 60 - 59, 23 * 60 + 59))


def near(start: datetime, end: datetime) -> Any:
    return st.datetimes(min_value=start, max_value=end, timezones=offsets)


# Anywhere in Python's range, and often within a day or two of its ends and of the
# contract's (where an offset overflows the year, or crosses a bound).
aware = (near(datetime(1, 1, 1), datetime(9999, 12, 31, 23, 59))
         | near(datetime(1, 1, 1), datetime(1, 1, 2, 23, 59))
         | near(datetime(9999, 12, 30), datetime(9999, 12, 31, 23, 59))
         | near(datetime(1969, 12, 30), datetime(1970, 1, 2))
         | near(datetime(9998, 12, 30), datetime(9999, 1, 2)))


@PURE
@given(ts=iso_strings() | aware.map(lambda d: d.isoformat())
       | st.integers(-2**70, 2**70) | st.floats())
def test_any_date_is_refused_or_a_utc_time_both_databases_hold(ts: Any) -> None:
    got = admitted(batch({"ts": ts}))
    if got is not None:
        when = got.records[0].ts
        assert when.utcoffset() == timedelta(0)
        assert MIN_TS <= when <= MAX_TS


@PURE
@given(when=aware)
def test_a_time_in_range_after_utc_is_admitted(when: datetime) -> None:
    """The refusals above are not of everything: inside the range, any offset is fine."""
    got = admitted(batch({"ts": when.isoformat()}))
    utc = when.astimezone(timezone.utc) if MIN_TS <= when <= MAX_TS else None
    assert (got is not None) == (utc is not None)
    if got is not None:
        assert got.records[0].ts == utc


# -- floats --------------------------------------------------------------------------------

@PURE
@given(value=st.floats() | st.sampled_from([math.nan, math.inf, -math.inf, 5e-324,
                                           1.7976931348623157e308]))
def test_any_float_is_refused_naming_the_field_or_finite(value: float) -> None:
    payload = batch({"metrics": {"pm2_5": value}})
    if math.isfinite(value) and abs(value) <= MAX_METRIC:
        assert decode(TelemetryBatch, payload).records[0].metrics["pm2_5"] == value
        return
    with pytest.raises(WireError) as err:
        decode(TelemetryBatch, payload)
    assert err.value.field == "records.0.metrics.pm2_5"


# -- deep and wide JSON --------------------------------------------------------------------

scalars = (st.none() | st.booleans() | any_int | st.floats() | st.text(max_size=8))
documents = st.recursive(scalars, lambda inner: st.lists(inner, max_size=6)
                         | st.dictionaries(st.text(max_size=6), inner, max_size=6),
                         max_leaves=60)


def nest(depth: int) -> Any:
    value: Any = 1
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


@PURE
@given(result=st.dictionaries(st.text(max_size=6), documents, max_size=8)
       | st.integers(1, 300).map(lambda d: {"deep": nest(d)})
       | st.integers(1, 8000).map(lambda n: {f"k{i}": i for i in range(n)}))
def test_free_json_is_refused_or_plain_finite_json(result: Dict[str, Any]) -> None:
    payload = json.dumps({"schema_version": 1, "device_id": BOX, "command_id": "c1",
                          "status": "succeeded", "result": result}, allow_nan=True).encode()
    try:
        got = decode(CommandResult, payload)
    except WireError:
        return
    # What is admitted is JSON every reader takes (no NaN, no Infinity).
    json.dumps(got.result, allow_nan=False)


# -- the store -----------------------------------------------------------------------------

@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[Engine]:
    name = ""
    if request.param == "sqlite":
        url = f"sqlite:///{Path(tmp_path_factory.mktemp('props')) / 'fleet.db'}"
    else:
        name = create_pg_database()
        url = f"{pg_base()}/{name}"
    eng = make_engine(url)
    migrate(eng)
    with eng.begin() as conn:
        conn.execute(devices.insert().values(
            device_id=BOX, site="s", kind="sensor", district="d", lat=0, lon=0, tags=[],
            password_hash="x", created_at=utcnow(), state="unknown", desired={},
            desired_version=0, reported={}, rejected_count=0))
    yield eng
    eng.dispose()
    if name:
        drop_pg_database(name)


hostile_records = st.fixed_dictionaries({
    "seq": st.integers(0, MAX_SEQ) | any_int,
    "ts": aware.map(lambda d: d.isoformat()) | iso_strings(),
    "metrics": st.dictionaries(st.text(max_size=8), st.floats() | any_int, max_size=4),
    "sources": st.dictionaries(st.text(max_size=8), st.fixed_dictionaries(
        {"state": st.sampled_from(["ok", "stale"]), "reason": st.text(max_size=8)}),
        max_size=2),
})
_seqs = iter(range(10**9))


@STORED
@given(group=st.lists(st.tuples(st.sampled_from(["telemetry", "health", "state",
                                                  "cmd/c1/result", "config/reported"]),
                                hostile_records | documents), min_size=1, max_size=6))
def test_no_message_stalls_the_store(engine: Engine, group: List[Tuple[str, Any]]) -> None:
    """A group commit of hostile messages and one good one: each is stored or rejected,
    in one pass, and the good one is stored whatever shares its commit."""
    good = {"seq": next(_seqs), "ts": utcnow().isoformat() + "+00:00",
            "metrics": {"pm2_5": 1.0}}
    group = [*group, ("telemetry", good)]
    messages = []
    for leaf, body in group:
        if leaf in ("telemetry", "health") and isinstance(body, dict) and "seq" in body:
            body = {"schema_version": 1, "device_id": BOX, "epoch": EPOCH, "stream": leaf,
                    "records": [body]}
        elif isinstance(body, dict):
            body = {"schema_version": 1, "device_id": BOX, "command_id": "c1",
                    "state": "online", "status": "succeeded", "version": 1,
                    "config_hash": "h", **body}
        payload = json.dumps(body, allow_nan=True).encode()
        messages.append(Message(f"simpul/v1/{BOX}/{leaf}", payload, next(_seqs) % 65535 + 1,
                                1, False))
    ingest = Ingest(engine, "127.0.0.1", 1, "u", "p")
    before = counts(engine)
    done: List[Tuple[List[Message], Batch]] = []
    ingest._commit(messages, utcnow(), done, claims=False)  # raises only if the store is down
    # Every message is in exactly one committed part: none is held for a retry.
    assert sorted(id(m) for part, _ in done for m in part) == sorted(id(m) for m in messages)
    after = counts(engine)
    new_records = after[0] - before[0]
    new_rejects = after[1] - before[1]
    assert new_records == sum(b.stored for _, b in done)
    assert new_records >= 1, "the good message was held back"
    assert new_rejects == sum(len(b.rejected) for _, b in done)


def counts(engine: Engine) -> Tuple[int, int]:
    with engine.connect() as conn:
        return (int(conn.execute(select(func.count()).select_from(records)).scalar_one()),
                int(conn.execute(select(func.count()).select_from(rejects)).scalar_one()))
