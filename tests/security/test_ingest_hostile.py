"""A box's own credentials, hostile payloads: no message stalls the ingest (issue 16, 6-7).

Each test runs against a real Mosquitto and a real fleet on SQLite and on PostgreSQL. The
hostile messages are published as the device itself, on its own leaves; then a good batch
must be stored within seconds, every hostile one must sit in the rejects with its reason,
and nothing may come back: the reject count stays put and the ingest never reconnects.
"""

import json
import logging
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any, Dict, List, Tuple

import httpx
import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import select, text
from sqlalchemy.engine import Engine

from fleet_api import db
from fleet_api.broker.accounts import FLEET_USER
from fleet_api.broker.mqtt_link import Message
from fleet_api.db import make_engine, records, rejects
from fleet_api.ingest import rollups
from fleet_api.ingest.consumer import Ingest
from fleet_api.ingest.store import Batch
from simpul_wire import Record, TelemetryBatch, encode, utcnow
from testbed.harness import Broker, Fleet, device, telemetry, wait_until
from testbed.mqtt import Client
from tests.fleet.conftest import db_url, fleet  # noqa: F401 -- both engines

pytestmark = pytest.mark.slow

EPOCH = "00112233445566778899aabb"
BOX = "park-hostile"


def record(seq: Any = 0, ts: Any = "2026-11-23T08:00:00Z", **extra: Any) -> Dict[str, Any]:
    return {"seq": seq, "ts": ts, "metrics": {"pm2_5": 1.5}, **extra}


def raw_batch(*records: Dict[str, Any], stream: str = "telemetry") -> bytes:
    return json.dumps({"schema_version": 1, "device_id": BOX, "ts": "2026-11-23T08:00:00Z",
                       "stream": stream, "epoch": EPOCH, "records": list(records)},
                      allow_nan=True).encode()


def with_metrics(text: str) -> bytes:
    """A batch whose one record's metrics object is `text`, verbatim JSON."""
    return raw_batch(record(metrics={"__M__": 0})).replace(b'{"__M__": 0}', text.encode())


# (leaf, payload, what the reject's reason must mention)
HOSTILE: List[Tuple[str, bytes, str]] = [
    ("telemetry", raw_batch(record(seq=2**64)), "records.0.seq"),
    ("telemetry", raw_batch(record(seq=2**63)), "records.0.seq"),
    ("telemetry", raw_batch(record(seq=10**40)), "records.0.seq"),
    ("telemetry", raw_batch(record(ts="9999-12-31T23:00:00-05:00")), "records.0.ts"),
    ("telemetry", raw_batch(record(ts="0001-01-01T01:00:00+05:00")), "records.0.ts"),
    ("telemetry", raw_batch(record(ts="9999-12-31T23:59:59Z")), "records.0.ts"),
    ("telemetry", raw_batch(record(ts=-10**12)), "records.0.ts"),
    ("telemetry", with_metrics('{"pm2_5": NaN}'), "records.0.metrics.pm2_5"),
    ("telemetry", with_metrics('{"pm2_5": Infinity}'), "records.0.metrics.pm2_5"),
    ("telemetry", with_metrics('{"pm2_5": -Infinity}'), "records.0.metrics.pm2_5"),
    ("telemetry", with_metrics('{"pm2_5": 1e999}'), "records.0.metrics.pm2_5"),
    ("telemetry", with_metrics('{"pm2_5": 1' + "0" * 400 + "}"), "records.0.metrics.pm2_5"),
    ("telemetry", with_metrics('{"\\ud800": 1}'), "Invalid JSON"),
    ("telemetry", with_metrics('{"a\\u0000b": 1}'), "records.0.metrics.a\\x00b.[key]"),
    ("telemetry", with_metrics("{" + ",".join(f'"m{i}": {i}' for i in range(5000))
                               + ', "m5000": NaN}'), "records.0.metrics.m5000"),
    ("telemetry", with_metrics('{"' + "n" * 129 + '": 1}'), "records.0.metrics"),
    ("telemetry", raw_batch(record(gap={"to_seq": 2**64, "reason": "x"})),
     "records.0.gap.to_seq"),
    ("telemetry", b"[" * 100_000 + b"]" * 100_000, "nested"),
    ("health", raw_batch(record(sources={"pms": {"state": "stale", "reason": "a\u0000b"}}),
                         stream="health"), "records.0.sources.pms.reason"),
    ("state", json.dumps({"schema_version": 1, "device_id": BOX, "state": "online",
                          "boot_id": "b" * 100}).encode(), "boot_id"),
    ("state", json.dumps({"schema_version": 1, "device_id": BOX, "state": "online",
                          "agent_version": "v" * 300, "boot_id": "0123"}).encode(),
     "agent_version"),
    ("config/reported", json.dumps({"schema_version": 1, "device_id": BOX,
                                    "version": 2**40, "config_hash": "h"}).encode(),
     "version"),
    ("config/reported", json.dumps({"schema_version": 1, "device_id": BOX, "version": 1,
                                    "config_hash": "h", "tier_applied": {"down_mbps": float(
                                        "nan")}}).encode(), "tier_applied.down_mbps"),
    ("cmd/c1/result", json.dumps({"schema_version": 1, "device_id": BOX, "command_id": "c1",
                                  "status": "succeeded", "result": {"x": float("inf")}}
                                 ).encode(), "result"),
    ("cmd/c1/result", json.dumps({"schema_version": 1, "device_id": BOX, "command_id": "c1",
                                  "status": "failed", "error": "bad\u0000"}).encode(),
     "error"),
]


def good_batch(seqs: range) -> bytes:
    records = [Record(seq=s, ts=utcnow(), metrics={"pm2_5": float(s)}) for s in seqs]
    return encode(TelemetryBatch(device_id=BOX, epoch=EPOCH, records=records))


def api_rejects(running: Fleet) -> List[Dict[str, Any]]:
    with running.api() as api:
        resp = api.get(f"/api/v1/devices/{BOX}/rejects", params={"limit": 1000})
    assert resp.status_code == 200, resp.text
    return resp.json()["data"]  # type: ignore[no-any-return]


def strict_json(resp: httpx.Response) -> Any:
    """The body as JSON, refusing the NaN/Infinity words no JSON reader in a browser takes."""
    def refuse(word: str) -> None:
        raise AssertionError(f"{resp.url} answered with {word}, which is not JSON")
    return json.loads(resp.text, parse_constant=refuse)


def test_hostile_payloads_are_rejected_and_the_ingest_goes_on(broker: Broker,
                                                              fleet: Fleet) -> None:  # noqa: F811
    password = fleet.register(BOX)["mqtt"]["password"]
    box = Client(broker.port, BOX, password, client_id=BOX)
    started = time.monotonic()
    try:
        for leaf, payload, _ in HOSTILE:
            assert not box.publish(f"simpul/v1/{BOX}/{leaf}", payload).is_failure, leaf
        assert not box.publish(f"simpul/v1/{BOX}/telemetry", good_batch(range(3))).is_failure
        stored = wait_until(lambda: telemetry(fleet, BOX), 10, what="the good batch")
        took = time.monotonic() - started
    finally:
        box.close()
    assert [r["metrics"]["pm2_5"] for r in stored] == [0.0, 1.0, 2.0]
    assert took < 10
    found = wait_until(lambda: (lambda r: r if len(r) >= len(HOSTILE) else None)(
        api_rejects(fleet)), 10, what="every hostile payload in the rejects")
    reasons = [r["reason"] for r in reversed(found)]
    assert len(reasons) == len(HOSTILE), reasons
    for (leaf, _, mention), reason in zip(HOSTILE, reasons):
        assert mention in reason, (leaf, mention, reason)
    # Acknowledged once: nothing comes back and is refused again, and the ingest never
    # had to reconnect to get past a message.
    time.sleep(3)
    assert len(api_rejects(fleet)) == len(HOSTILE)
    assert device(fleet, BOX)["rejected_count"] == len(HOSTILE)
    log = fleet.process.output()
    assert "lost the broker" not in log and "ingest flush failed" not in log, log[-3000:]
    assert "database write failed" not in log, log[-3000:]
    # The device's pages stay valid JSON.
    with fleet.api() as api:
        strict_json(api.get(f"/api/v1/devices/{BOX}/telemetry"))
        strict_json(api.get(f"/api/v1/devices/{BOX}"))


class PoisonedIngest(Ingest):
    """The real ingest, with one gap in its contract: a message carrying the metric
    `poison` gets a seq no database column holds. It stands for any message the contract
    lets through but the store refuses, the case the group commit must survive."""

    def _add(self, batch: Batch, message: Message, now: Any, claims: bool = True) -> None:
        before = len(batch.rows)
        super()._add(batch, message, now, claims)
        if b'"poison"' in message.payload:
            for row in batch.rows[before:]:
                row["seq"] = 2**70


def run_ingest(ingest: Ingest) -> threading.Thread:
    thread = threading.Thread(target=ingest.run, name="test-ingest", daemon=True)
    thread.start()
    wait_until(lambda: ingest.connected, 10, what="the ingest's CONNACK")
    return thread


def test_one_refused_message_in_a_group_commit_holds_back_no_other(
        scratch: Path, broker: Broker, db_url: str, caplog: pytest.LogCaptureFixture  # noqa: F811
) -> None:
    # The fleet registers the box, then its ingest's session is taken over by ours.
    fleet_process = Fleet(scratch, broker, db_url=db_url).start()
    password = fleet_process.register(BOX)["mqtt"]["password"]
    fleet_process.stop()
    engine = make_engine(db_url)
    credentials = ("127.0.0.1", broker.fleet_port, FLEET_USER, broker.fleet_password)
    ingest = PoisonedIngest(engine, *credentials, flush_s=1.0)
    thread = run_ingest(ingest)
    box = Client(broker.port, BOX, password, client_id=BOX)
    try:
        assert not box.subscribe(f"simpul/v1/{BOX}/ack").is_failure
        sent = []
        for seq in range(41):  # sent back to back: one group commit
            metrics = {"poison": 1.0} if seq == 20 else {"pm2_5": float(seq)}
            body = TelemetryBatch(device_id=BOX, epoch=EPOCH, records=[
                Record(seq=seq, ts=utcnow(), metrics=metrics)])
            sent.append(box.c.publish(f"simpul/v1/{BOX}/telemetry", encode(body), qos=1))
        for info in sent:
            info.wait_for_publish(5)
        with caplog.at_level(logging.WARNING, logger="simpul.ingest"):
            wait_until(lambda: stored_seqs(engine) == [s for s in range(41) if s != 20], 15,
                       what="the 40 good records")
            found = wait_until(lambda: reject_reasons(engine), 10, what="the reject")
        assert len(found) == 1 and found[0].startswith("cannot be stored:"), found
        assert "committing its halves apart" in caplog.text
        refusal = wait_until(lambda: [json.loads(p) for t, p in box.messages
                                      if t.endswith("/ack") and b"rejected" in p], 10,
                             what="the box told its record was refused")
        assert refusal[0]["ranges"] == [[20, 20]]
    finally:
        ingest.stop()
        thread.join(10)
        box.close()
    # Every message was acknowledged: the same session, reconnected, gets nothing again.
    again = Ingest(engine, *credentials)
    thread = run_ingest(again)
    try:
        time.sleep(2)
        assert again.stored == 0 and len(reject_reasons(engine)) == 1
    finally:
        again.stop()
        thread.join(10)
        engine.dispose()


def stored_seqs(engine: Engine) -> List[int]:
    with engine.connect() as conn:
        return sorted(r[0] for r in conn.execute(select(records.c.seq).where(
            records.c.device_id == BOX)))


def reject_reasons(engine: Engine) -> List[str]:
    with engine.connect() as conn:
        return [r[0] for r in conn.execute(select(rejects.c.reason).where(
            rejects.c.device_id == BOX))]


# -- 7: only finite numbers; rows an older fleet stored break no page and no rollup --------

def older_fleet_rows(engine: Engine, device_id: str) -> None:
    """Rows as an older fleet (no finite-number contract) left them: on SQLite the words
    NaN and Infinity; on PostgreSQL, whose json type refuses those, numbers beyond any
    double. And a row whose metrics are not an object at all."""
    sqlite = engine.dialect.name == "sqlite"
    bodies = (['{"pm2_5": NaN, "pm10": 3.0}', '{"pm2_5": Infinity}'] if sqlite else
              ['{"pm2_5": 1e999, "pm10": 3.0}', '{"pm2_5": -1e400}']) + ["[1, 2]"]
    value = ":m" if sqlite else "CAST(:m AS json)"
    sources = "'{}'" if sqlite else "CAST('{}' AS json)"
    now = utcnow().replace(tzinfo=None)
    with engine.begin() as conn:
        for seq, body in enumerate(bodies):
            conn.execute(text(
                "INSERT INTO records (device_id, stream, epoch, seq, ts, received_at, "
                f"metrics, sources) VALUES (:d, 'telemetry', :e, :s, :t, :t, {value}, "
                f"{sources})"), {"d": device_id, "e": EPOCH, "s": seq, "t": now, "m": body})


def _has_mark(engine: Engine, name: str) -> bool:
    with engine.connect() as conn:
        return conn.execute(select(db.marks.c.name).where(db.marks.c.name == name)).first() \
            is not None


def test_rows_that_cannot_be_folded_isolate_their_device(broker: Broker,
                                                        fleet: Fleet) -> None:  # noqa: F811
    good = fleet.register("park-good")["mqtt"]["password"]
    fleet.register(BOX)
    box = Client(broker.port, "park-good", good, client_id="park-good")
    try:
        body = TelemetryBatch(device_id="park-good", epoch=EPOCH, records=[
            Record(seq=s, ts=utcnow(), metrics={"pm2_5": 10.0 + s}) for s in range(3)])
        assert not box.publish("simpul/v1/park-good/telemetry", encode(body)).is_failure
        wait_until(lambda: len(telemetry(fleet, "park-good")) == 3, 10, what="good records")
    finally:
        box.close()
    engine = make_engine(fleet.db_url)
    try:
        # The fleet's worker makes its first pass as it starts, and then one a minute:
        # wait for that first one, so the pass below never runs beside it.
        wait_until(lambda: _has_mark(engine, rollups.MARK), 30, what="the worker's first pass")
        older_fleet_rows(engine, BOX)
        # The pass the fleet's worker runs each minute, run now on the fleet's database,
        # two rows at a time so the bad box's rows and the good box's share parts.
        assert rollups.run(engine, rollups.Retention(), chunk=2,
                           now=utcnow().replace(tzinfo=None) + timedelta(seconds=5)) == 6
    finally:
        engine.dispose()
    with fleet.api() as api:
        flagged = strict_json(api.get("/api/v1/alerts", params={"device_id": BOX}))["data"]
        assert [a["rule"] for a in flagged] == ["rollup"], flagged
        assert "3 values or rows" in flagged[0]["message"], flagged
        assert strict_json(api.get("/api/v1/alerts",
                                   params={"device_id": "park-good"}))["data"] == []
        # Everyone else's buckets were folded, and what could be folded of the bad box.
        good_buckets = strict_json(api.get("/api/v1/devices/park-good/rollups",
                                           params={"resolution": "1m"}))["data"]
        assert sum(b["metrics"]["pm2_5"]["count"] for b in good_buckets) == 3
        bad_buckets = strict_json(api.get(f"/api/v1/devices/{BOX}/rollups",
                                          params={"resolution": "1m"}))["data"]
        assert [sorted(b["metrics"]) for b in bad_buckets] == [["pm10"]]
        # Its telemetry page and device page stay valid JSON, NaN or not.
        rows = strict_json(api.get(f"/api/v1/devices/{BOX}/telemetry"))["data"]
        assert len(rows) == 3
        strict_json(api.get(f"/api/v1/devices/{BOX}"))


def test_the_migration_cleans_what_an_older_fleet_stored(scratch: Path, broker: Broker) -> None:
    """SQLite, the engine that kept NaN: a database at the revision before this one."""
    url = f"sqlite:///{scratch}/fleet.db"
    engine = make_engine(url)
    config = Config()
    config.set_main_option("script_location", str(Path(db.__file__).parent / "migrations"))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0104")
        conn.execute(db.devices.insert().values(
            device_id=BOX, site="park", kind="sensor", district="Kota Barat", lat=0, lon=0,
            tags=[], password_hash="x", created_at=utcnow().replace(tzinfo=None),
            state="unknown", desired={}, desired_version=0, reported={}, rejected_count=0))
    older_fleet_rows(engine, BOX)
    fleet_process = Fleet(scratch, broker, db_url=url).start()
    try:
        with engine.connect() as conn:
            stored = [r[0] for r in conn.execute(text("SELECT metrics FROM records"))]
        assert not any("NaN" in s or "Infinity" in s for s in stored), stored
        assert '{"pm10": 3.0}' in stored
        with fleet_process.api() as api:
            rows = strict_json(api.get(f"/api/v1/devices/{BOX}/telemetry"))["data"]
        assert [r["metrics"] for r in rows] == [{"pm10": 3.0}, {}, [1, 2]]
    finally:
        fleet_process.stop()
        engine.dispose()


def test_buckets_the_database_refuses_hold_back_only_their_device(db_url: str) -> None:  # noqa: F811
    """The pass's last line: a device whose buckets the database refuses (here a NULL sum,
    against NOT NULL on both engines) is merged apart from the others, in a savepoint."""
    engine = make_engine(db_url)
    db.migrate(engine)
    bucket = utcnow().replace(tzinfo=None, second=0, microsecond=0)
    good = ("park-good", "telemetry", "pm2_5", bucket)
    bad = ("park-bad", "telemetry", "pm2_5", bucket)
    problems: rollups.Problems = {}
    try:
        with engine.begin() as conn:
            rollups.merge(conn, {good: [1, 2.0, 2.0, 2.0], bad: [1, None, None, None]},  # type: ignore[list-item]
                          {good: [1, 2.0, 2.0, 2.0]}, problems)
        with engine.connect() as conn:
            stored = conn.execute(select(db.rollup_1m.c.device_id, db.rollup_1m.c.sum)).all()
            hours = conn.execute(select(db.rollup_1h.c.device_id)).all()
    finally:
        engine.dispose()
    assert [tuple(r) for r in stored] == [("park-good", 2.0)]
    assert [r[0] for r in hours] == ["park-good"]
    assert list(problems) == ["park-bad"] and "cannot be stored" in problems["park-bad"][1]
